using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Memslots;

namespace Hypervisor.GuestMmu.Backing;

/// <summary>
/// Hands dirty bits back for a zap that spans memslots (release): each dirty frame goes to the backing of the
/// memslot its gfn lies in, looked up in one snapshot (the last slot is remembered, so a run of frames in one slot
/// costs one lookup).
/// </summary>
/// <remarks>
/// Invariant: every present spte lies inside a memslot of the current snapshot, because the MMU publishes a memslot
/// delete or move and zaps the old range under one hold of its write lock. A dirty spte found outside every slot
/// breaks that invariant; it is counted in <see cref="Orphaned"/> (and the MMU's stats) rather than lost silently.
/// </remarks>
internal struct MemslotDirtySink : IDirtyPfnSink
{
    private readonly MemslotSnapshot _slots;
    private Memslot? _last;

    /// <summary>A sink that resolves frames through <paramref name="slots"/>.</summary>
    public MemslotDirtySink(MemslotSnapshot slots)
    {
        _slots = slots;
        _last = null;
        Marked = 0;
        Orphaned = 0;
    }

    /// <summary>Frames marked dirty.</summary>
    public long Marked { get; private set; }

    /// <summary>Dirty frames whose gfn lies outside every memslot (an invariant violation; see the remarks).</summary>
    public long Orphaned { get; private set; }

    /// <inheritdoc />
    public void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
        var frames = EptGeometry.FramesPerEntry(level);
        var slot = _last is { } last && last.ContainsGfn(gfn) ? last : _slots.FindByGfn(gfn);
        if (slot is null)
        {
            Orphaned += (long)frames;
            return;
        }

        _last = slot;
        slot.Backing.MarkDirty(pfn, frames);
        Marked += (long)frames;
    }
}
