using System.Globalization;
using System.Text;

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// A shadow page-table entry in KVM's EPT layout (reference/kvm-mmu.md §1): bit 0 R, 1 W, 2 X, 3–5
/// memory type, 6 ignore-PAT, 7 large page, 8 accessed, 9 dirty, 11 MMU-present (KVM's own present
/// flag), 12–51 frame number (a host <see cref="Notifier.Pfn"/> in leaves, an <see cref="EptArena"/>
/// table index in non-leaf entries), 54–55 the saved R and X of an access-tracked entry, 57
/// host-writable, 58 MMU-writable. <see cref="Empty"/> (0) is KVM's <c>SHADOW_NONPRESENT_VALUE</c>.
/// </summary>
/// <remarks>
/// Invariants of every leaf this type builds: W ⇒ MMU-writable ⇒ host-writable (W may be cleared on its
/// own, e.g. for write-protection, and restored later while MMU-writable stays set). The accessed bit is
/// kept in software even when the VM runs with A/D bits off: <see cref="MarkAccessTracked"/> clears it and
/// <see cref="RestoreFromAccessTrack"/> sets it, as KVM does since 6.13.
/// </remarks>
/// <param name="Value">The raw 64-bit entry.</param>
public readonly record struct Spte(ulong Value)
{
    /// <summary>Bit 0: reads allowed.</summary>
    public const ulong ReadableBit = 1UL << 0;

    /// <summary>Bit 1: writes allowed.</summary>
    public const ulong WritableBit = 1UL << 1;

    /// <summary>Bit 2: instruction fetches allowed.</summary>
    public const ulong ExecutableBit = 1UL << 2;

    /// <summary>Bits 0–2: R, W and X together.</summary>
    public const ulong PermissionMask = ReadableBit | WritableBit | ExecutableBit;

    /// <summary>Bits 3–5: the EPT memory type of a leaf.</summary>
    public const ulong MemoryTypeMask = 7UL << MemoryTypeShift;

    /// <summary>Position of the memory-type field.</summary>
    public const int MemoryTypeShift = 3;

    /// <summary>The write-back memory type (6), used for all guest RAM.</summary>
    public const int MemoryTypeWriteBack = 6;

    /// <summary>Bit 6: ignore the guest's PAT.</summary>
    public const ulong IgnorePatBit = 1UL << 6;

    /// <summary>Bit 7 at level 2 or 3: the entry is a 2 MiB or 1 GiB leaf.</summary>
    public const ulong LargePageBit = 1UL << 7;

    /// <summary>Bit 8: set by "hardware" on an access through the entry; cleared by aging.</summary>
    public const ulong AccessedBit = 1UL << 8;

    /// <summary>Bit 9: set by "hardware" on a write through the entry.</summary>
    public const ulong DirtyBit = 1UL << 9;

    /// <summary>Bit 11: KVM's MMU-present flag. Access-tracked entries keep it; frozen entries never have it.</summary>
    public const ulong MmuPresentBit = 1UL << 11;

    /// <summary>Bits 12–51: the frame number (pfn of a leaf, table index of a non-leaf).</summary>
    public const ulong PfnMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>Position of the frame-number field.</summary>
    public const int PfnShift = 12;

    /// <summary>Bit 54: the R bit saved by <see cref="MarkAccessTracked"/>.</summary>
    public const ulong SavedReadableBit = 1UL << 54;

    /// <summary>Bit 55: the X bit saved by <see cref="MarkAccessTracked"/>.</summary>
    public const ulong SavedExecutableBit = 1UL << 55;

    /// <summary>Bit 57: the host PTE allows writes (clear for read-only memslots and VMAs).</summary>
    public const ulong HostWritableBit = 1UL << 57;

    /// <summary>Bit 58: W may be restored without the MMU lock. Implies <see cref="HostWritableBit"/>.</summary>
    public const ulong MmuWritableBit = 1UL << 58;

    /// <summary>Raw value of <see cref="Frozen"/>: bits 3, 4, 7 and 10 — no permission, A/D, present or pfn bit.</summary>
    public const ulong FrozenValue = 0x498;

    // Saved R (bit 0) lands on bit 54, saved X (bit 2) on bit 55.
    private const int SavedReadableShift = 54;
    private const int SavedExecutableShift = 53;

    private const ulong LeafBaseBits =
        ReadableBit | ((ulong)MemoryTypeWriteBack << MemoryTypeShift) | IgnorePatBit | MmuPresentBit;

    private const ulong NonLeafBits = ReadableBit | WritableBit | ExecutableBit | MmuPresentBit;

    /// <summary>The non-present entry, 0 (KVM's <c>SHADOW_NONPRESENT_VALUE</c>).</summary>
    public static Spte Empty => default;

    /// <summary>
    /// The transient marker a thread writes into an entry it owns while it replaces a page table by a
    /// large leaf (KVM's <c>FROZEN_SPTE</c>). Non-present. Nobody compare-exchanges away from it except
    /// its owner; a fault that meets it retries.
    /// </summary>
    public static Spte Frozen => new(FrozenValue);

    /// <summary>True when KVM's MMU-present flag (bit 11) is set, access-tracked entries included.</summary>
    public bool IsPresent => (Value & MmuPresentBit) != 0;

    /// <summary>True for the <see cref="Frozen"/> marker.</summary>
    public bool IsFrozen => Value == FrozenValue;

    /// <summary>True when the large-page bit (7) is set; meaningful at levels 2 and 3 only.</summary>
    public bool IsLargePage => (Value & LargePageBit) != 0;

    /// <summary>True when the accessed bit (8) is set.</summary>
    public bool IsAccessed => (Value & AccessedBit) != 0;

    /// <summary>True when the dirty bit (9) is set.</summary>
    public bool IsDirty => (Value & DirtyBit) != 0;

    /// <summary>True when R (bit 0) is set.</summary>
    public bool IsReadable => (Value & ReadableBit) != 0;

    /// <summary>True when W (bit 1) is set.</summary>
    public bool IsWritable => (Value & WritableBit) != 0;

    /// <summary>True when X (bit 2) is set.</summary>
    public bool IsExecutable => (Value & ExecutableBit) != 0;

    /// <summary>True when the host-writable bit (57) is set.</summary>
    public bool IsHostWritable => (Value & HostWritableBit) != 0;

    /// <summary>True when the MMU-writable bit (58) is set.</summary>
    public bool IsMmuWritable => (Value & MmuWritableBit) != 0;

    /// <summary>True when the ignore-PAT bit (6) is set.</summary>
    public bool IgnoresPat => (Value & IgnorePatBit) != 0;

    /// <summary>The memory-type field (bits 3–5).</summary>
    public int MemoryType => (int)((Value & MemoryTypeMask) >> MemoryTypeShift);

    /// <summary>
    /// True for a present entry with R, W and X all clear: aging with A/D bits off made it fault on the
    /// next access while keeping it MMU-present (its R and X wait in bits 54–55).
    /// </summary>
    public bool IsAccessTracked => (Value & (MmuPresentBit | PermissionMask)) == MmuPresentBit;

    /// <summary>The frame-number field: the mapped host frame of a leaf.</summary>
    public Pfn Pfn => new((Value & PfnMask) >> PfnShift);

    /// <summary>The frame-number field read as the <see cref="EptArena"/> index of a non-leaf entry's child table.</summary>
    public uint TableIndex => (uint)((Value & PfnMask) >> PfnShift);

    /// <summary>
    /// True when the entry is present and maps memory at <paramref name="level"/> rather than pointing to
    /// a table: always at level 1, with the large-page bit at levels 2 and 3, never at level 4.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not 1 to 4.</exception>
    public bool IsLeaf(int level)
    {
        EptGeometry.CheckLevel(level, 1, EptGeometry.RootLevel, nameof(level));
        return IsPresent && (level == 1 || (level < EptGeometry.RootLevel && IsLargePage));
    }

    /// <summary>
    /// A present leaf: R, MMU-present, write-back memory type with ignore-PAT, W plus host-writable and
    /// MMU-writable iff <paramref name="writable"/>, X iff <paramref name="executable"/>, the large-page bit
    /// iff <paramref name="large"/>, the accessed bit iff <paramref name="accessed"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pfn"/> does not fit bits 12–51.</exception>
    public static Spte Leaf(Pfn pfn, bool writable, bool executable, bool large, bool accessed)
    {
        if (pfn.Value > Pfn.MaxValue)
        {
            throw new ArgumentOutOfRangeException(
                nameof(pfn), pfn, $"{pfn} does not fit an spte: frame numbers must be at most 0x{Pfn.MaxValue:x} (bits 12–51)");
        }

        var value = LeafBaseBits | (pfn.Value << PfnShift);
        if (writable)
        {
            value |= WritableBit | HostWritableBit | MmuWritableBit;
        }

        if (executable)
        {
            value |= ExecutableBit;
        }

        if (large)
        {
            value |= LargePageBit;
        }

        if (accessed)
        {
            value |= AccessedBit;
        }

        return new Spte(value);
    }

    /// <summary>A present non-leaf entry pointing to arena table <paramref name="childTable"/>, with R, W and X set (leaves decide permissions).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="childTable"/> does not fit bits 12–51 (never for a <see cref="uint"/>).</exception>
    public static Spte NonLeaf(uint childTable) => new(NonLeafBits | ((ulong)childTable << PfnShift));

    /// <summary>
    /// Ages the entry with A/D bits off: W is dropped, R and X move to bits 54–55, the accessed bit is
    /// cleared; MMU-present, MMU-writable and the pfn stay. Already access-tracked entries are returned unchanged.
    /// </summary>
    /// <exception cref="InvalidOperationException">The entry is not present.</exception>
    public Spte MarkAccessTracked()
    {
        ThrowIfNotPresent(nameof(MarkAccessTracked));
        if (IsAccessTracked)
        {
            return this;
        }

        return new Spte(AccessTrack(Value));
    }

    /// <summary>
    /// Undoes <see cref="MarkAccessTracked"/> as KVM's fast page fault does: R and X come back from bits
    /// 54–55 (W does not; it is restored separately while MMU-writable is set) and the accessed bit is set,
    /// because only an access restores an entry.
    /// </summary>
    /// <exception cref="InvalidOperationException">The entry is not access-tracked.</exception>
    public Spte RestoreFromAccessTrack()
    {
        if (!IsAccessTracked)
        {
            throw new InvalidOperationException($"{this} is not access-tracked: only a present entry with R, W and X clear can be restored");
        }

        var restored = Value & ~(SavedReadableBit | SavedExecutableBit);
        restored |= ((Value & SavedReadableBit) >> SavedReadableShift) | ((Value & SavedExecutableBit) >> SavedExecutableShift);
        return new Spte(restored | AccessedBit);
    }

    /// <summary>The entry with the accessed bit cleared (aging with A/D bits on).</summary>
    public Spte WithoutAccessed() => new(Value & ~AccessedBit);

    /// <summary>The entry with W cleared; host-writable and MMU-writable stay, so W may be restored later.</summary>
    public Spte WithoutWritable() => new(Value & ~WritableBit);

    /// <summary>The entry with the accessed bit, and the dirty bit when <paramref name="dirty"/>, set: what "hardware" writes on an access.</summary>
    public Spte WithAccessed(bool dirty) => new(Value | AccessedBit | (dirty ? DirtyBit : 0));

    /// <summary>Decodes the entry: <c>spte:0x…[present R W X wb ipat large A D pfn:0x… hw mw]</c>.</summary>
    public override string ToString()
    {
        var text = new StringBuilder("spte:0x").Append(Value.ToString("x", CultureInfo.InvariantCulture));
        if (Value == 0)
        {
            return text.Append("[empty]").ToString();
        }

        if (IsFrozen)
        {
            return text.Append("[frozen]").ToString();
        }

        text.Append('[').Append(IsPresent ? "present" : "not-present");
        Append(text, IsReadable, "R");
        Append(text, IsWritable, "W");
        Append(text, IsExecutable, "X");
        text.Append(" mt:").Append(MemoryType.ToString(CultureInfo.InvariantCulture));
        Append(text, IgnoresPat, "ipat");
        Append(text, IsLargePage, "large");
        Append(text, IsAccessed, "A");
        Append(text, IsDirty, "D");
        text.Append(" pfn:0x").Append(Pfn.Value.ToString("x", CultureInfo.InvariantCulture));
        Append(text, IsAccessTracked, "access-tracked");
        Append(text, (Value & SavedReadableBit) != 0, "saved-R");
        Append(text, (Value & SavedExecutableBit) != 0, "saved-X");
        Append(text, IsHostWritable, "host-writable");
        Append(text, IsMmuWritable, "mmu-writable");
        return text.Append(']').ToString();
    }

    /// <summary>The raw access-track transform shared with the bulk kernels (caller checked presence).</summary>
    internal static ulong AccessTrack(ulong value) =>
        (value & ~(PermissionMask | AccessedBit))
        | ((value & ReadableBit) << SavedReadableShift)
        | ((value & ExecutableBit) << SavedExecutableShift);

    /// <summary>
    /// Throws unless a present leaf keeps W ⇒ MMU-writable ⇒ host-writable and carries the large-page bit
    /// exactly when it is installed above level 1, with a pfn aligned to the level.
    /// </summary>
    internal void CheckLeafFor(int level, Gfn gfn)
    {
        if (!IsPresent)
        {
            return;
        }

        if (IsWritable && !IsMmuWritable)
        {
            throw new ArgumentException($"{this} for {gfn} is writable without MMU-writable: W requires bit 58", "newSpte");
        }

        if (IsMmuWritable && !IsHostWritable)
        {
            throw new ArgumentException($"{this} for {gfn} is MMU-writable without host-writable: bit 58 requires bit 57", "newSpte");
        }

        if (level == 1 && IsLargePage)
        {
            throw new ArgumentException($"{this} for {gfn} has the large-page bit at level 1: 4 KiB leaves must not set bit 7", "newSpte");
        }

        if (level > 1)
        {
            if (!IsLargePage)
            {
                throw new ArgumentException(
                    $"{this} for {gfn} lacks the large-page bit at level {level}: a leaf above level 1 must set bit 7 (a table is linked by the page table itself)", "newSpte");
            }

            var frames = EptGeometry.FramesPerEntry(level);
            if ((Pfn.Value & (frames - 1)) != 0)
            {
                throw new ArgumentException(
                    $"{this} for {gfn} maps {Pfn} at level {level}: a level-{level} leaf's pfn must be a multiple of {frames}", "newSpte");
            }
        }
    }

    private void ThrowIfNotPresent(string operation)
    {
        if (!IsPresent)
        {
            throw new InvalidOperationException($"{operation} needs a present spte, not {this}");
        }
    }

    private static void Append(StringBuilder text, bool set, string name)
    {
        if (set)
        {
            text.Append(' ').Append(name);
        }
    }
}
