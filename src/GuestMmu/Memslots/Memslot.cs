using System.Globalization;
using Hypervisor.GuestMmu.Backing;

namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// One memslot (KVM's <c>struct kvm_memory_slot</c>): the guest frames <c>[BaseGfn, EndGfn)</c> are backed by
/// the host virtual range <c>[UserspaceAddress, UserspaceEnd)</c> of one host process, <see cref="Mm"/>, reached
/// through <see cref="Backing"/>.
/// </summary>
/// <remarks>
/// Immutable: a move or a flags change installs a new <see cref="Memslot"/> object with the same
/// <see cref="Id"/> and a new <see cref="Generation"/>, so a reader holding a slot keeps a consistent view of
/// it. Invariants (checked by <see cref="MemslotSet.SetRegion"/> before construction): <see cref="Pages"/> is
/// 1 to <see cref="MemslotSet.MaxPagesPerSlot"/>; both ranges are page-aligned; the guest range ends at or
/// below 2^52 and the host range at or below 2^47, neither wrapping.
/// </remarks>
public sealed class Memslot
{
    internal Memslot(int id, Gfn baseGfn, ulong pages, Hva userspaceAddress, IGuestMemoryBacking backing, MemslotFlags flags, long generation)
    {
        Id = id;
        BaseGfn = baseGfn;
        Pages = pages;
        UserspaceAddress = userspaceAddress;
        Backing = backing;
        Flags = flags;
        Generation = generation;
    }

    /// <summary>The slot number (KVM's slot id, 0 to <see cref="MemslotSet.MaxSlots"/> - 1).</summary>
    public int Id { get; }

    /// <summary>The first guest frame of the slot.</summary>
    public Gfn BaseGfn { get; }

    /// <summary>Number of 4 KiB pages in the slot (at least 1).</summary>
    public ulong Pages { get; }

    /// <summary>The first guest frame after the slot (exclusive end).</summary>
    public Gfn EndGfn => BaseGfn + Pages;

    /// <summary>The guest-physical address of the slot's first byte.</summary>
    public Gpa BaseGpa => BaseGfn.ToGpa();

    /// <summary>Size of the slot in bytes.</summary>
    public ulong Size => Pages << Paging.PageShift;

    /// <summary>The host virtual address that backs <see cref="BaseGfn"/> in <see cref="Mm"/>.</summary>
    public Hva UserspaceAddress { get; }

    /// <summary>The host virtual address after the slot's last byte (exclusive end).</summary>
    public Hva UserspaceEnd => UserspaceAddress + Size;

    /// <summary>How the secondary MMU reaches the slot's host memory: resolve, release, mark dirty, frame bytes.</summary>
    public IGuestMemoryBacking Backing { get; }

    /// <summary>The host process whose address space backs the slot (<see cref="Backing"/>'s); notifier ranges name it.</summary>
    public IMm Mm => Backing.Mm;

    /// <summary>The slot's flags.</summary>
    public MemslotFlags Flags { get; }

    /// <summary>True when guest writes to the slot are not mapped (<see cref="MemslotFlags.ReadOnly"/>).</summary>
    public bool IsReadOnly => (Flags & MemslotFlags.ReadOnly) != 0;

    /// <summary>True when guest writes are logged (<see cref="MemslotFlags.LogDirtyPages"/>).</summary>
    public bool IsDirtyLogging => (Flags & MemslotFlags.LogDirtyPages) != 0;

    /// <summary>
    /// The <see cref="MemslotSet.Generation"/> of the change that installed this version of the slot; a slot
    /// that later changes is replaced by a new object with a higher generation.
    /// </summary>
    public long Generation { get; }

    /// <summary>True when <paramref name="gfn"/> lies inside <c>[BaseGfn, EndGfn)</c>.</summary>
    /// <param name="gfn">The guest frame.</param>
    public bool ContainsGfn(Gfn gfn) => gfn.Value - BaseGfn.Value < Pages;

    /// <summary>True when <paramref name="hva"/> lies inside <c>[UserspaceAddress, UserspaceEnd)</c>.</summary>
    /// <param name="hva">The host virtual address.</param>
    public bool ContainsHva(Hva hva) => hva.Value - UserspaceAddress.Value < Size;

    /// <summary>
    /// The host virtual address that backs <paramref name="gfn"/> (KVM's <c>__gfn_to_hva_memslot</c>).
    /// </summary>
    /// <param name="gfn">A guest frame inside the slot.</param>
    /// <exception cref="MemslotException"><paramref name="gfn"/> is outside the slot.</exception>
    public Hva GfnToHva(Gfn gfn)
    {
        if (!ContainsGfn(gfn))
        {
            throw new MemslotException(
                MemslotError.GfnOutsideSlot,
                Id,
                $"{gfn} is outside memslot {Id} [{BaseGfn}, {EndGfn}): only frames of the slot have a host address",
                nameof(gfn));
        }

        return UserspaceAddress + ((gfn.Value - BaseGfn.Value) << Paging.PageShift);
    }

    /// <summary>
    /// The guest frame that <paramref name="hva"/> backs, rounding down inside a page (KVM's
    /// <c>hva_to_gfn_memslot</c>).
    /// </summary>
    /// <param name="hva">A host virtual address inside the slot.</param>
    /// <exception cref="MemslotException"><paramref name="hva"/> is outside the slot.</exception>
    public Gfn HvaToGfn(Hva hva)
    {
        if (!ContainsHva(hva))
        {
            throw new MemslotException(
                MemslotError.HvaOutsideSlot,
                Id,
                $"host address {hva} is outside memslot {Id}'s userspace range [{UserspaceAddress}, {UserspaceEnd}): only addresses of the slot back a guest frame",
                nameof(hva));
        }

        return BaseGfn + ((hva.Value - UserspaceAddress.Value) >> Paging.PageShift);
    }

    /// <summary>
    /// KVM's clamping in <c>kvm_handle_hva_range</c>: intersects the host range <c>[start, end)</c> with the
    /// slot's userspace range and converts the intersection to the guest frames <c>[gfnStart, gfnEnd)</c>,
    /// including every page the intersection touches (the start rounds down, the end rounds up).
    /// </summary>
    /// <param name="start">Inclusive start of the host range; need not be page-aligned.</param>
    /// <param name="end">Exclusive end of the host range; need not be page-aligned.</param>
    /// <param name="gfnStart">First guest frame of the clamped range.</param>
    /// <param name="gfnEnd">Guest frame after the clamped range.</param>
    /// <returns>False (with both outputs at <see cref="BaseGfn"/>) when the ranges do not intersect.</returns>
    public bool TryClampHvaRange(Hva start, Hva end, out Gfn gfnStart, out Gfn gfnEnd)
    {
        var slotStart = UserspaceAddress.Value;
        var slotEnd = UserspaceEnd.Value;
        var clampedStart = Math.Max(start.Value, slotStart);
        var clampedEnd = Math.Min(end.Value, slotEnd);
        if (clampedStart >= clampedEnd)
        {
            gfnStart = BaseGfn;
            gfnEnd = BaseGfn;
            return false;
        }

        // clampedEnd <= slotEnd <= 2^47, so adding PageOffsetMask cannot wrap.
        gfnStart = BaseGfn + ((clampedStart - slotStart) >> Paging.PageShift);
        gfnEnd = BaseGfn + ((clampedEnd - slotStart + Paging.PageOffsetMask) >> Paging.PageShift);
        return true;
    }

    /// <summary>A one-line description: id, guest range, host range, mm, flags and generation.</summary>
    public override string ToString() =>
        string.Create(
            CultureInfo.InvariantCulture,
            $"memslot {Id} [{BaseGpa}, {EndGfn.ToGpa()}) -> mm {Mm.Id} [{UserspaceAddress}, {UserspaceEnd}) {Flags} gen {Generation}");
}
