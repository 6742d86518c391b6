using Hypervisor.GuestMmu.Backing;

namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// A VM's memslots with the semantics of <c>KVM_SET_USER_MEMORY_REGION</c> (address space 0 only): create,
/// delete, move and flag changes through <see cref="SetRegion"/>; lock-free lookups by guest frame (the fault
/// path) and by host range (the notifier handlers). The set belongs to one <see cref="Mmu.TdpMmu"/>, which alone
/// changes it (<see cref="Mmu.TdpMmu.SetMemoryRegion"/>), so that every change comes with its zap.
/// </summary>
/// <remarks>
/// <para><b>Publication scheme (RCU-like).</b> The set holds one immutable <see cref="MemslotSnapshot"/>.
/// Readers load it with <c>Volatile.Read</c> (<see cref="Current"/>) and never block or
/// retry. A writer takes <c>_writeLock</c>, builds a complete new snapshot by copy-on-write (O(n)), and
/// publishes it with one <c>Volatile.Write</c>; the release/acquire pair makes every field
/// of the new snapshot and its slots visible to a reader that sees the reference. The garbage collector plays
/// the part of KVM's <c>synchronize_srcu</c>: an old snapshot lives as long as some reader holds it.
/// Invariant: every published snapshot is a state some sequence of successful <see cref="SetRegion"/> calls
/// produced, and <see cref="Generation"/> rises by exactly one per published snapshot, so a reader sees the
/// old or the new generation, never a half-applied change.</para>
/// <para><b>What the set does not do.</b> It never touches sptes, and without a grace period it cannot know
/// when the last reader of an old snapshot is done. So (1) after a delete or a move the owning MMU zaps every
/// spte of the old slot (<see cref="MemslotChange.RequiresZap"/>) before it releases its write lock, and (2) the fault path must re-check, under
/// the MMU lock and before it installs an spte, that the generation it looked the slot up in is still
/// <see cref="Generation"/> (or that <see cref="FindById"/> still returns the same object); the zap takes
/// the MMU lock after the new snapshot is published, so a fault either installed before the zap (and is
/// zapped) or sees the new generation (and retries). Likewise a memslot update racing a notifier
/// invalidation (KVM blocks it with <c>mn_active_invalidate_count</c>) is the MMU's business: the set only
/// guarantees that each snapshot is consistent.</para>
/// <para><b>Lock order.</b> <c>_writeLock</c> (KVM's <c>slots_lock</c>) is a leaf: nothing is called and no
/// other lock is taken while it is held, so it may be taken under any lock, including the MMU lock.</para>
/// </remarks>
public sealed class MemslotSet
{
    /// <summary>
    /// Number of slot ids: valid ids are 0 to 32763. This is x86 KVM's <c>KVM_USER_MEM_SLOTS</c> (what
    /// <c>KVM_CAP_NR_MEMSLOTS</c> reports): <c>KVM_MEM_SLOTS_NUM</c> = 32767 (SHRT_MAX) less the 3 private
    /// slots x86 KVM keeps for itself (TSS, identity page table, APIC access page). The simulator has no private
    /// slots but uses the same limit, so the emulated and the <c>/dev/kvm</c> accelerators accept the same ids.
    /// </summary>
    public const int MaxSlots = 32764;

    /// <summary>Width of the guest-physical address space in bits (EPT's maximum MAXPHYADDR).</summary>
    public const int GuestPhysicalBits = 52;

    /// <summary>
    /// Most pages one slot may hold: KVM's <c>KVM_MEM_MAX_NR_PAGES</c>, 2^31 - 1, because dirty bitmaps are
    /// indexed with an unsigned int (just under 8 TiB).
    /// </summary>
    public const ulong MaxPagesPerSlot = (1UL << 31) - 1;

    // Writers serialise here; readers never take it. Leaf lock: see the class remarks.
    private readonly Lock _writeLock = new();

    /// <summary>An empty set; only the owning MMU (and tests) create one.</summary>
    internal MemslotSet()
    {
    }

    // The published snapshot. Read with Volatile.Read (acquire) outside the lock; replaced only under
    // _writeLock with Volatile.Write (release) after the new snapshot is complete.
    private MemslotSnapshot _current = MemslotSnapshot.Empty;

    /// <summary>Exclusive end of the guest-physical address space: 2^52.</summary>
    public static Gpa GuestPhysicalEnd => new(1UL << GuestPhysicalBits);

    /// <summary>
    /// Exclusive end of the host user address space a slot may map: 2^47, x86-64's <c>TASK_SIZE</c> with 4-level
    /// paging (KVM's <c>access_ok</c> bound), the same limit as the host processes' own.
    /// </summary>
    public static Hva UserSpaceEnd => new(1UL << 47);

    /// <summary>The published snapshot: take it once when several lookups must agree.</summary>
    public MemslotSnapshot Current => Volatile.Read(ref _current);

    /// <summary>The current generation: 0 for the empty set, plus one per successful change.</summary>
    public long Generation => Current.Generation;

    /// <summary>Number of slots in the current snapshot.</summary>
    public int Count => Current.Count;

    /// <summary>The slots of the current snapshot in ascending guest-physical order.</summary>
    public IReadOnlyList<Memslot> Slots => Current.Slots;

    /// <summary>The slot containing <paramref name="gfn"/> in the current snapshot, or null; see <see cref="MemslotSnapshot.FindByGfn"/>.</summary>
    /// <param name="gfn">The guest frame.</param>
    public Memslot? FindByGfn(Gfn gfn) => Current.FindByGfn(gfn);

    /// <summary>The slot with id <paramref name="id"/> in the current snapshot, or null.</summary>
    /// <param name="id">The slot id.</param>
    public Memslot? FindById(int id) => Current.FindById(id);

    /// <summary>
    /// The slots of <paramref name="mm"/> in the current snapshot that map part of <c>[start, end)</c>, with
    /// their clamped guest-frame ranges; see <see cref="MemslotSnapshot.OverlappingHva"/>.
    /// </summary>
    /// <param name="mm">The host process.</param>
    /// <param name="start">Inclusive start of the host range.</param>
    /// <param name="end">Exclusive end of the host range, above <paramref name="start"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="mm"/> is null.</exception>
    /// <exception cref="InvalidRangeException"><paramref name="end"/> is not above <paramref name="start"/>.</exception>
    public MemslotHvaEnumerator OverlappingHva(IMm mm, Hva start, Hva end) => Current.OverlappingHva(mm, start, end);

    /// <summary>
    /// <c>KVM_SET_USER_MEMORY_REGION</c>. Size 0 deletes slot <paramref name="slot"/>; a free id creates a slot;
    /// an existing id with another guest-physical address moves it; the same address with other flags changes
    /// the flags. An existing slot may change only its base address and <see cref="MemslotFlags.LogDirtyPages"/>:
    /// its size, userspace address, backing process and <see cref="MemslotFlags.ReadOnly"/> are fixed until it is deleted.
    /// </summary>
    /// <remarks>
    /// <para>Checks run in KVM's order (flags, size, GPA and HVA alignment, HVA range, slot id, GPA range,
    /// page count), then the backing, then the rules for an existing slot, then overlap. As in KVM, a delete still
    /// checks the alignment and HVA range of the addresses it ignores; it ignores <paramref name="backing"/>, which
    /// may then be null.</para>
    /// <para>Deleting a slot id that has no slot is a no-op returning <see cref="MemslotChangeKind.None"/>.
    /// Current KVM answers it with <c>-EINVAL</c> (<c>if (!old || !old->npages) return -EINVAL;</c>); the set
    /// is deliberately idempotent so that a VMM can tear down without tracking which ids it used. A request
    /// identical to the existing slot is also <see cref="MemslotChangeKind.None"/>, as in KVM.</para>
    /// <para>Every other successful call publishes a new snapshot with <see cref="Generation"/> one higher. For
    /// a delete or a move the owning MMU then zaps every spte of <see cref="MemslotChange.Old"/>; see the class
    /// remarks for the check the fault path needs.</para>
    /// </remarks>
    /// <param name="slot">Slot id, 0 to <see cref="MaxSlots"/> - 1.</param>
    /// <param name="flags">The slot's flags.</param>
    /// <param name="guestPhysicalAddress">Page-aligned guest-physical base address.</param>
    /// <param name="size">Size in bytes, a multiple of the page size; 0 deletes.</param>
    /// <param name="userspaceAddress">Page-aligned host virtual address of the base in the backing's process.</param>
    /// <param name="backing">The host memory that backs the slot; null only for a delete.</param>
    /// <returns>What changed, with the slot before and after.</returns>
    /// <exception cref="MemslotException">A rule was broken; <see cref="MemslotException.Error"/> says which.</exception>
    internal MemslotChange SetRegion(int slot, MemslotFlags flags, Gpa guestPhysicalAddress, ulong size, Hva userspaceAddress, IGuestMemoryBacking? backing)
    {
        Validate(slot, flags, guestPhysicalAddress, size, userspaceAddress, backing);

        lock (_writeLock)
        {
            // Only writers replace _current and they hold the lock, so a plain read is the latest snapshot.
            var current = _current;
            var old = current.FindById(slot);
            var generation = current.Generation + 1;

            if (size == 0)
            {
                if (old is null)
                {
                    return new MemslotChange(MemslotChangeKind.None, null, null, current.Generation);
                }

                Publish(current.With(old, null, generation));
                return new MemslotChange(MemslotChangeKind.Deleted, old, null, generation);
            }

            var baseGfn = guestPhysicalAddress.Gfn;
            var pages = size >> Paging.PageShift;
            MemslotChangeKind kind;
            if (old is null)
            {
                kind = MemslotChangeKind.Created;
            }
            else
            {
                CheckModification(old, flags, pages, userspaceAddress, backing!);
                if (baseGfn != old.BaseGfn)
                {
                    kind = MemslotChangeKind.Moved;
                }
                else if (flags != old.Flags)
                {
                    kind = MemslotChangeKind.FlagsChanged;
                }
                else
                {
                    return new MemslotChange(MemslotChangeKind.None, old, old, current.Generation);
                }
            }

            if (kind is MemslotChangeKind.Created or MemslotChangeKind.Moved)
            {
                var endGfn = baseGfn + pages;
                var other = current.FirstGfnOverlap(baseGfn, endGfn, slot);
                if (other is not null)
                {
                    throw new MemslotException(
                        MemslotError.Overlap,
                        slot,
                        $"memslot {slot}: guest-physical range [{baseGfn.ToGpa()}, {endGfn.ToGpa()}) overlaps memslot {other.Id} at [{other.BaseGpa}, {other.EndGfn.ToGpa()}): slots may touch but not overlap",
                        nameof(guestPhysicalAddress));
                }
            }

            var installed = new Memslot(slot, baseGfn, pages, userspaceAddress, backing!, flags, generation);
            Publish(current.With(old, installed, generation));
            return new MemslotChange(kind, old, installed, generation);
        }
    }

    /// <summary>
    /// Deletes slot <paramref name="slot"/>: <see cref="SetRegion"/> with size 0. A slot id with no slot is a
    /// no-op (<see cref="MemslotChangeKind.None"/>). The owning MMU then zaps every spte of
    /// <see cref="MemslotChange.Old"/>.
    /// </summary>
    /// <param name="slot">Slot id, 0 to <see cref="MaxSlots"/> - 1.</param>
    /// <returns>What changed.</returns>
    /// <exception cref="MemslotException">The id is out of range.</exception>
    internal MemslotChange DeleteRegion(int slot) => SetRegion(slot, MemslotFlags.None, default, 0, default, null);

    /// <summary>The stateless checks, in KVM's order; they need no lock.</summary>
    private static void Validate(int slot, MemslotFlags flags, Gpa gpa, ulong size, Hva hva, IGuestMemoryBacking? backing)
    {
        const MemslotFlags known = MemslotFlags.ReadOnly | MemslotFlags.LogDirtyPages;
        if ((flags & ~known) != 0)
        {
            throw new MemslotException(
                MemslotError.UnknownFlags,
                slot,
                $"memslot {slot}: flags 0x{(uint)flags:x} contain unknown bits 0x{(uint)(flags & ~known):x}: only LogDirtyPages (0x1) and ReadOnly (0x2) are defined",
                nameof(flags));
        }

        if (!Paging.IsPageAligned(size))
        {
            throw new MemslotException(
                MemslotError.UnalignedSize,
                slot,
                $"memslot {slot}: size 0x{size:x} is not page-aligned: it must be a multiple of {Paging.PageSize}",
                nameof(size));
        }

        if (!gpa.IsPageAligned)
        {
            throw new MemslotException(
                MemslotError.UnalignedGuestPhysicalAddress,
                slot,
                $"memslot {slot}: guest-physical address {gpa} is not page-aligned: it must be a multiple of {Paging.PageSize}",
                "guestPhysicalAddress");
        }

        if (!hva.IsPageAligned)
        {
            throw new MemslotException(
                MemslotError.UnalignedUserspaceAddress,
                slot,
                $"memslot {slot}: userspace address {hva} is not page-aligned: it must be a multiple of {Paging.PageSize}",
                "userspaceAddress");
        }

        // KVM's access_ok(userspace_addr, memory_size): no wrap, and the end within the user address space.
        var userEnd = UserSpaceEnd.Value;
        if (hva.Value > userEnd || size > userEnd - hva.Value)
        {
            throw new MemslotException(
                MemslotError.UserspaceRangeOutOfBounds,
                slot,
                $"memslot {slot}: userspace range [{hva}, +0x{size:x}) wraps or ends beyond the 47-bit user address space end {UserSpaceEnd}",
                "userspaceAddress");
        }

        if ((uint)slot >= MaxSlots)
        {
            throw new MemslotException(
                MemslotError.SlotIdOutOfRange,
                slot,
                $"memslot id {slot} is out of range: ids are 0 to {MaxSlots - 1}",
                nameof(slot));
        }

        if (size == 0)
        {
            return;
        }

        // KVM: the wrap check in kvm_set_memory_region, then x86's "last gfn <= kvm_mmu_max_gfn()".
        var gpaEnd = GuestPhysicalEnd.Value;
        if (gpa.Value > gpaEnd || size > gpaEnd - gpa.Value)
        {
            throw new MemslotException(
                MemslotError.GuestPhysicalRangeOutOfBounds,
                slot,
                $"memslot {slot}: guest-physical range [{gpa}, +0x{size:x}) wraps or ends beyond the {GuestPhysicalBits}-bit guest-physical address space end {GuestPhysicalEnd}",
                "guestPhysicalAddress");
        }

        var pages = size >> Paging.PageShift;
        if (pages > MaxPagesPerSlot)
        {
            throw new MemslotException(
                MemslotError.TooManyPages,
                slot,
                $"memslot {slot}: size 0x{size:x} is {pages} pages, above the per-slot limit of {MaxPagesPerSlot} pages (KVM_MEM_MAX_NR_PAGES)",
                nameof(size));
        }

        if (backing is null)
        {
            throw new MemslotException(
                MemslotError.MissingMm,
                slot,
                $"memslot {slot}: backing is null: a slot of size 0x{size:x} needs the host memory that backs it",
                nameof(backing));
        }
    }

    /// <summary>KVM's rules for modifying an existing slot: only the base address and dirty logging may change.</summary>
    private static void CheckModification(Memslot old, MemslotFlags flags, ulong pages, Hva hva, IGuestMemoryBacking backing)
    {
        var id = old.Id;
        if (pages != old.Pages)
        {
            throw new MemslotException(
                MemslotError.SizeChange,
                id,
                $"memslot {id}: size 0x{pages << Paging.PageShift:x} differs from the existing slot's 0x{old.Size:x}: an existing slot may change only its guest-physical address and LogDirtyPages; delete it and create it again",
                "size");
        }

        if (hva != old.UserspaceAddress)
        {
            throw new MemslotException(
                MemslotError.UserspaceAddressChange,
                id,
                $"memslot {id}: userspace address {hva} differs from the existing slot's {old.UserspaceAddress}: an existing slot may change only its guest-physical address and LogDirtyPages; delete it and create it again",
                "userspaceAddress");
        }

        if (!ReferenceEquals(backing.Mm, old.Mm))
        {
            throw new MemslotException(
                MemslotError.MmChange,
                id,
                $"memslot {id}: mm {backing.Mm.Id} differs from the existing slot's mm {old.Mm.Id}: an existing slot may change only its guest-physical address and LogDirtyPages; delete it and create it again",
                "backing");
        }

        if (((flags ^ old.Flags) & MemslotFlags.ReadOnly) != 0)
        {
            throw new MemslotException(
                MemslotError.ReadOnlyChange,
                id,
                $"memslot {id}: flags {flags} would turn ReadOnly {(flags.HasFlag(MemslotFlags.ReadOnly) ? "on" : "off")} (the existing slot has {old.Flags}): ReadOnly is fixed for a slot's lifetime; delete it and create it again",
                "flags");
        }
    }

    private void Publish(MemslotSnapshot next) => Volatile.Write(ref _current, next);
}
