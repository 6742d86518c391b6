namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// Huge leaves: a PD entry with <see cref="HostPte.LargePageBit"/> maps 2 MiB (512 frames, the first 2 MiB-aligned) —
/// a transparent huge page. Every write of one happens under <c>_populateLock</c> (the PMD lock); readers read it with a
/// Volatile read; a clear is an atomic exchange, so an accessed or dirty bit set by a racing compare-exchange
/// (<see cref="TryUpdateHuge"/>) is never lost.
/// </summary>
public sealed partial class HostPageTable
{
    /// <summary>Bytes one huge leaf maps (2 MiB).</summary>
    public const ulong HugePageSize = PteTableSpan;

    /// <summary>Frames one huge leaf maps (512).</summary>
    public const int HugePageFrames = EntriesPerTable;

    /// <summary>True when <paramref name="entry"/>, a PD entry, is a huge leaf (present or PROT_NONE-encoded with the large bit).</summary>
    public static bool IsHugeLeaf(ulong entry) => (entry & HostPte.LargePageBit) != 0 && (entry & HostPte.PresentBit) != 0;

    /// <summary>The 4 KiB view of huge leaf <paramref name="pmd"/> at <paramref name="address"/>: that subpage's frame, the leaf's flags without the large bit.</summary>
    public static HostPte SubpageOf(HostPte pmd, Hva address)
    {
        var index = (address.Value & (HugePageSize - 1)) >> PteShift;
        return HostPte.Present(pmd.Pfn + index, pmd.Value & ~(HostPte.PfnMask | HostPte.LargePageBit));
    }

    /// <summary>
    /// The PD entry covering <paramref name="address"/>, read without a lock: a huge leaf, a pointer to a PTE table, or
    /// <see cref="HostPte.None"/> (also when an upper level is missing).
    /// </summary>
    /// <exception cref="InvalidRangeException"><paramref name="address"/> is at or beyond 2^47.</exception>
    public unsafe HostPte ReadPmd(Hva address) // unsafe: walks table frames through raw pointers.
    {
        CheckAddress(address, nameof(address));
        ThrowIfDisposed();
        return FindPdSlot(address.Value, allocate: false, out var slot, out _) ? new HostPte(Volatile.Read(ref *slot)) : HostPte.None;
    }

    /// <summary>True when a huge leaf maps <paramref name="address"/>.</summary>
    public bool IsHugeMapped(Hva address) => IsHugeLeaf(ReadPmd(address).Value);

    /// <summary>
    /// Installs huge leaf <paramref name="entry"/> for the 2 MiB at <paramref name="hugeAddress"/> if its PD entry is
    /// none (populating the upper levels); false when it is not (a racing fault installed a table or a leaf).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="hugeAddress"/> is not 2 MiB-aligned or <paramref name="entry"/> is not a huge leaf.</exception>
    public unsafe bool TryInstallHuge(Hva hugeAddress, HostPte entry) // unsafe: the slot is a raw pointer into a table frame.
    {
        CheckHuge(hugeAddress, entry);
        FindPdSlot(hugeAddress.Value, allocate: true, out var slot, out _);
        lock (_populateLock)
        {
            if (Volatile.Read(ref *slot) != 0)
            {
                return false;
            }

            Volatile.Write(ref *slot, entry.Value);
            return true;
        }
    }

    /// <summary>Replaces huge leaf <paramref name="expected"/> by <paramref name="updated"/> atomically; false when the entry changed.</summary>
    /// <exception cref="ArgumentException"><paramref name="hugeAddress"/> is not 2 MiB-aligned or <paramref name="updated"/> is not a huge leaf.</exception>
    public unsafe bool TryUpdateHuge(Hva hugeAddress, HostPte expected, HostPte updated) // unsafe: the slot is a raw pointer into a table frame.
    {
        CheckHuge(hugeAddress, updated);
        return FindPdSlot(hugeAddress.Value, allocate: false, out var slot, out _)
            && Interlocked.CompareExchange(ref *slot, updated.Value, expected.Value) == expected.Value;
    }

    /// <summary>Clears the huge leaf at <paramref name="hugeAddress"/> and returns it (<c>pmdp_huge_get_and_clear</c>), or <see cref="HostPte.None"/> when there is none.</summary>
    /// <exception cref="ArgumentException"><paramref name="hugeAddress"/> is not 2 MiB-aligned.</exception>
    public unsafe HostPte ClearHuge(Hva hugeAddress) // unsafe: the slot is a raw pointer into a table frame.
    {
        CheckHugeAddress(hugeAddress);
        if (!FindPdSlot(hugeAddress.Value, allocate: false, out var slot, out _))
        {
            return HostPte.None;
        }

        lock (_populateLock)
        {
            var entry = Volatile.Read(ref *slot);
            return IsHugeLeaf(entry) ? new HostPte(Interlocked.Exchange(ref *slot, 0UL)) : HostPte.None;
        }
    }

    /// <summary>
    /// The page-table half of <c>__split_huge_pmd</c>: under the PMD lock the huge leaf is cleared and
    /// <paramref name="flush"/> runs (the CPU and secondary TLB flush of the 2 MiB), then a new PTE table is filled with
    /// <paramref name="ptes"/>(leaf)'s 512 entries and published in its place. The table frame is allocated before the
    /// lock; <paramref name="flush"/> gets the cleared leaf. Returns the leaf that was split, or <see cref="HostPte.None"/> when there was none (nothing changes).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="hugeAddress"/> is not 2 MiB-aligned.</exception>
    public unsafe HostPte SplitHuge(Hva hugeAddress, Action<HostPte> flush, Action<HostPte, Span<ulong>> ptes) // unsafe: raw table pointers.
    {
        CheckHugeAddress(hugeAddress);
        ArgumentNullException.ThrowIfNull(flush);
        ArgumentNullException.ThrowIfNull(ptes);
        if (!FindPdSlot(hugeAddress.Value, allocate: false, out var slot, out _) || !IsHugeLeaf(Volatile.Read(ref *slot)))
        {
            return HostPte.None;
        }

        var table = AllocateTable(PteShift);
        lock (_populateLock)
        {
            var entry = Volatile.Read(ref *slot);
            if (!IsHugeLeaf(entry))
            {
                UnlinkTable(table, PteShift);
                _memory.Put(table);
                return HostPte.None;
            }

            var leaf = new HostPte(Interlocked.Exchange(ref *slot, 0UL));
            flush(leaf);
            ptes(leaf, new Span<ulong>(TableAt(table), EntriesPerTable));

            // The entries are written before this release store: a reader that sees the table sees them.
            Volatile.Write(ref *slot, HostPte.Present(table, UpperEntryFlags).Value);
            return leaf;
        }
    }

    /// <summary>
    /// The page-table half of <c>collapse_huge_page</c>'s <c>pmdp_collapse_flush</c>: under the PMD lock the PD entry of
    /// the 2 MiB at <paramref name="hugeAddress"/> — a pointer to a PTE table — is cleared and <paramref name="flush"/>
    /// runs with the cleared entry (the CPU and secondary TLB flush). The table is detached, not freed: the caller reads its entries (no one else
    /// can reach them now) and either installs a huge leaf and releases the table with <see cref="ReleaseDetachedTable"/>,
    /// or, having checked the entries before detaching, has nothing to put back. False when the entry is not a PTE table.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="hugeAddress"/> is not 2 MiB-aligned.</exception>
    public unsafe bool TryDetachTable(Hva hugeAddress, Action<HostPte> flush, out Pfn table) // unsafe: the slot is a raw pointer into a table frame.
    {
        CheckHugeAddress(hugeAddress);
        ArgumentNullException.ThrowIfNull(flush);
        table = default;
        if (!FindPdSlot(hugeAddress.Value, allocate: false, out var slot, out _))
        {
            return false;
        }

        lock (_populateLock)
        {
            var entry = Volatile.Read(ref *slot);
            if (entry == 0 || IsHugeLeaf(entry) || (entry & HostPte.PresentBit) == 0)
            {
                return false;
            }

            Volatile.Write(ref *slot, 0UL);
            flush(new HostPte(entry));
            table = PfnOf(entry);
            return true;
        }
    }

    /// <summary>The 512 entries of a table detached by <see cref="TryDetachTable"/> (the caller owns it: read and write freely).</summary>
    public unsafe Span<ulong> DetachedEntries(Pfn table) => new(TableAt(table), EntriesPerTable); // unsafe: a table frame is raw arena memory.

    /// <summary>Frees a table detached by <see cref="TryDetachTable"/> whose entries the caller has dealt with (Linux frees it after collapse).</summary>
    public void ReleaseDetachedTable(Pfn table)
    {
        UnlinkTable(table, PteShift);
        _memory.Put(table);
    }

    /// <summary>Calls <paramref name="visit"/> with the address and value of every huge leaf in <c>[start, end)</c> (Volatile reads, no lock).</summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or reaches beyond 2^47.</exception>
    public unsafe void ForEachHuge(Hva start, Hva end, Action<Hva, HostPte> visit) // unsafe: raw table pointers.
    {
        CheckRange(start, end, nameof(start));
        ArgumentNullException.ThrowIfNull(visit);
        ThrowIfDisposed();
        var address = start.Value & ~(HugePageSize - 1);
        while (address < end.Value)
        {
            if (!FindPdSlot(address, allocate: false, out var slot, out var holeEnd))
            {
                address = holeEnd; // no PD table: skip the hole its missing level covers
                continue;
            }

            var entry = Volatile.Read(ref *slot);
            if (IsHugeLeaf(entry))
            {
                visit(new Hva(address), new HostPte(entry));
            }

            address += HugePageSize;
        }
    }

    /// <summary>Descends to the PD entry of <paramref name="address"/>, populating PDPT and PD tables when <paramref name="allocate"/>; false when a level is missing.</summary>
    private unsafe bool FindPdSlot(ulong address, bool allocate, out ulong* slot, out ulong holeEnd) // unsafe: raw table pointers.
    {
        holeEnd = 0;
        var current = TableAt(_root);
        for (var shift = Pml4Shift; shift > PdShift; shift -= LevelBits)
        {
            var upper = current + ((address >> shift) & IndexMask);
            var entry = Volatile.Read(ref *upper);
            if (entry == 0)
            {
                if (!allocate)
                {
                    slot = null;
                    holeEnd = (address | ((1UL << shift) - 1)) + 1;
                    return false;
                }

                entry = Populate(upper, shift);
            }

            current = TableAt(PfnOf(entry));
        }

        slot = current + ((address >> PdShift) & IndexMask);
        return true;
    }

    private static void CheckHugeAddress(Hva hugeAddress)
    {
        if ((hugeAddress.Value & (HugePageSize - 1)) != 0 || hugeAddress.Value >= UserAddressLimit)
        {
            throw new ArgumentException($"{hugeAddress} is not the start of a 2 MiB huge page inside the user address space", nameof(hugeAddress));
        }
    }

    private static void CheckHuge(Hva hugeAddress, HostPte entry)
    {
        CheckHugeAddress(hugeAddress);
        if (!IsHugeLeaf(entry.Value) || (entry.Pfn.Value & (HugePageFrames - 1)) != 0)
        {
            throw new ArgumentException($"{entry} is not a huge leaf: it needs the present and large bits and a 2 MiB-aligned frame", nameof(entry));
        }
    }
}
