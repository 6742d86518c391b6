using System.Globalization;

namespace Hypervisor.Notifier;

/// <summary>
/// A host page-table entry in x86-64 format: the value the primary MMU stores in its page tables and
/// hands to <see cref="IMmuNotifier.ChangePte"/>. Only the hardware-defined bits are interpreted here;
/// non-present encodings (swap and migration entries) belong to the host memory manager.
/// </summary>
/// <param name="Value">The raw 64-bit entry.</param>
public readonly record struct HostPte(ulong Value)
{
    /// <summary>Bit 0: the entry maps a frame.</summary>
    public const ulong PresentBit = 1UL << 0;

    /// <summary>Bit 1: writes allowed.</summary>
    public const ulong WritableBit = 1UL << 1;

    /// <summary>Bit 2: user-mode access allowed.</summary>
    public const ulong UserBit = 1UL << 2;

    /// <summary>Bit 5: set by the CPU on any access through the entry.</summary>
    public const ulong AccessedBit = 1UL << 5;

    /// <summary>Bit 6: set by the CPU on a write through the entry.</summary>
    public const ulong DirtyBit = 1UL << 6;

    /// <summary>Bit 7 in a PMD or PUD: the entry is a large-page leaf.</summary>
    public const ulong LargePageBit = 1UL << 7;

    /// <summary>Bit 63: instruction fetches forbidden.</summary>
    public const ulong NoExecuteBit = 1UL << 63;

    /// <summary>Bits 12..51: the frame number.</summary>
    public const ulong PfnMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>The empty (none) entry.</summary>
    public static HostPte None => default;

    /// <summary>True when the entry maps a frame.</summary>
    public bool IsPresent => (Value & PresentBit) != 0;

    /// <summary>True when the entry is all zero (never mapped, or cleared).</summary>
    public bool IsNone => Value == 0;

    /// <summary>True when writes are allowed.</summary>
    public bool IsWritable => (Value & WritableBit) != 0;

    /// <summary>True when the accessed bit is set.</summary>
    public bool IsAccessed => (Value & AccessedBit) != 0;

    /// <summary>True when the dirty bit is set.</summary>
    public bool IsDirty => (Value & DirtyBit) != 0;

    /// <summary>True when instruction fetches are forbidden.</summary>
    public bool IsNoExecute => (Value & NoExecuteBit) != 0;

    /// <summary>The mapped frame (meaningful only when <see cref="IsPresent"/>).</summary>
    public Pfn Pfn => new((Value & PfnMask) >> Paging.PageShift);

    /// <summary>A present entry mapping <paramref name="pfn"/> with the given extra flag bits.</summary>
    public static HostPte Present(Pfn pfn, ulong flags) =>
        new(((pfn.Value << Paging.PageShift) & PfnMask) | PresentBit | (flags & ~PfnMask));

    /// <summary>The same entry with <paramref name="bits"/> set.</summary>
    public HostPte With(ulong bits) => new(Value | bits);

    /// <summary>The same entry with <paramref name="bits"/> cleared.</summary>
    public HostPte Without(ulong bits) => new(Value & ~bits);

    /// <summary>Hex value plus decoded flags, e.g. <c>0x1234067 [P W U A D] pfn:0x1234</c>.</summary>
    public override string ToString()
    {
        if (!IsPresent)
        {
            return "0x" + Value.ToString("x", CultureInfo.InvariantCulture) + " [not present]";
        }

        var flags = string.Concat(
            "P",
            IsWritable ? " W" : string.Empty,
            (Value & UserBit) != 0 ? " U" : string.Empty,
            IsAccessed ? " A" : string.Empty,
            IsDirty ? " D" : string.Empty,
            IsNoExecute ? " NX" : string.Empty);
        return "0x" + Value.ToString("x", CultureInfo.InvariantCulture) + " [" + flags + "] " + Pfn;
    }
}
