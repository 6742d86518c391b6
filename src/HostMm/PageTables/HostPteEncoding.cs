using System.Globalization;

namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// Non-present host PTE encodings (Linux's swap entries, migration entries and PROT_NONE PTEs) layered on
/// the x86 format of <see cref="HostPte"/>.
/// </summary>
/// <remarks>
/// <para>Layout of a non-present entry: bit 0 (present) clear and the value nonzero, so no encoding ever
/// looks present or none; bits 1..3 are the kind (1 swap, 2 migration read-only, 3 migration writable,
/// 4 PROT_NONE; 0, 5, 6, 7 are invalid); bits 12..51 the payload (swap slot or pfn); bits 5 and 6
/// (accessed, dirty) are kept by migration and PROT_NONE entries, so <see cref="HostPte.IsAccessed"/> and
/// <see cref="HostPte.IsDirty"/> read them directly. Every other bit is zero; a value that breaks this is
/// corrupt and <see cref="Classify"/> throws rather than guess.</para>
/// </remarks>
public static class HostPteEncoding
{
    /// <summary>Largest swap slot an entry can hold (40 payload bits).</summary>
    public const ulong MaxSwapSlot = (1UL << 40) - 1;

    /// <summary>Bits 1..3: the kind of a non-present entry.</summary>
    public const ulong KindMask = 0b1110;

    private const ulong SwapKind = 1UL << 1;
    private const ulong MigrationReadKind = 2UL << 1;
    private const ulong MigrationWriteKind = 3UL << 1;
    private const ulong ProtNoneKind = 4UL << 1;
    private const ulong YoungDirty = HostPte.AccessedBit | HostPte.DirtyBit;
    private const ulong SwapBits = KindMask | HostPte.PfnMask;
    private const ulong PfnEntryBits = KindMask | HostPte.PfnMask | YoungDirty;

    /// <summary>What <paramref name="pte"/> holds.</summary>
    /// <exception cref="InvalidHostPteException">The entry is non-present, nonzero and no valid encoding (a corrupt entry).</exception>
    public static HostPteKind Classify(HostPte pte)
    {
        var value = pte.Value;
        if ((value & HostPte.PresentBit) != 0)
        {
            return HostPteKind.Present;
        }

        return value == 0 ? HostPteKind.None : ClassifyNonPresent(pte);
    }

    /// <summary>A swap entry for <paramref name="slot"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="slot"/> is above <see cref="MaxSwapSlot"/>.</exception>
    public static HostPte MakeSwap(ulong slot)
    {
        if (slot > MaxSwapSlot)
        {
            throw new ArgumentOutOfRangeException(
                nameof(slot), slot, $"swap slot {slot} does not fit a swap entry: slots are 0 to {MaxSwapSlot} (40 bits)");
        }

        return new HostPte((slot << Paging.PageShift) | SwapKind);
    }

    /// <summary>The slot of a swap entry.</summary>
    /// <exception cref="InvalidHostPteException"><paramref name="pte"/> is not a swap entry.</exception>
    public static ulong SwapSlotOf(HostPte pte)
    {
        Require(pte, HostPteKind.Swap, "a swap entry");
        return (pte.Value & HostPte.PfnMask) >> Paging.PageShift;
    }

    /// <summary>A migration entry for <paramref name="pfn"/>, remembering whether the mapping was writable, young and dirty.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pfn"/> is above <see cref="Pfn.MaxValue"/>.</exception>
    public static HostPte MakeMigration(Pfn pfn, bool writable, bool young, bool dirty)
    {
        CheckPfn(pfn);
        var value = (pfn.Value << Paging.PageShift) | (writable ? MigrationWriteKind : MigrationReadKind);
        if (young)
        {
            value |= HostPte.AccessedBit;
        }

        if (dirty)
        {
            value |= HostPte.DirtyBit;
        }

        return new HostPte(value);
    }

    /// <summary>The frame being migrated away from.</summary>
    /// <exception cref="InvalidHostPteException"><paramref name="pte"/> is not a migration entry.</exception>
    public static Pfn MigrationPfn(HostPte pte)
    {
        Require(pte, HostPteKind.Migration, "a migration entry");
        return pte.Pfn;
    }

    /// <summary>True when the migrated mapping was writable (restore it writable).</summary>
    /// <exception cref="InvalidHostPteException"><paramref name="pte"/> is not a migration entry.</exception>
    public static bool IsMigrationWritable(HostPte pte)
    {
        Require(pte, HostPteKind.Migration, "a migration entry");
        return (pte.Value & KindMask) == MigrationWriteKind;
    }

    /// <summary>
    /// The PROT_NONE form of a present entry: non-present, same pfn, accessed and dirty kept; the
    /// protection is not kept (it is restored from the VMA's new protection by
    /// <see cref="RestoreFromProtNone"/>).
    /// </summary>
    /// <exception cref="InvalidHostPteException"><paramref name="present"/> is not present.</exception>
    public static HostPte MakeProtNone(HostPte present)
    {
        if (!present.IsPresent)
        {
            throw new InvalidHostPteException(
                present,
                $"cannot make {Describe(present)} PROT_NONE: only a present entry can become a PROT_NONE mapping",
                nameof(present));
        }

        return new HostPte((present.Value & (HostPte.PfnMask | YoungDirty)) | ProtNoneKind);
    }

    /// <summary>
    /// The present entry for a PROT_NONE entry given the new protection <paramref name="flags"/>: same pfn,
    /// <paramref name="flags"/>, and the accessed and dirty bits the PROT_NONE entry kept (as Linux's
    /// <c>pte_modify</c> keeps them).
    /// </summary>
    /// <exception cref="InvalidHostPteException"><paramref name="protNone"/> is not a PROT_NONE entry.</exception>
    /// <exception cref="ArgumentException"><paramref name="flags"/> has bits in the pfn field (12..51).</exception>
    public static HostPte RestoreFromProtNone(HostPte protNone, ulong flags)
    {
        Require(protNone, HostPteKind.ProtNone, "a PROT_NONE entry", nameof(protNone));
        if ((flags & HostPte.PfnMask) != 0)
        {
            throw new ArgumentException(
                $"flags 0x{flags:x} have bits 0x{flags & HostPte.PfnMask:x} in the pfn field: flags must be outside bits 12..51",
                nameof(flags));
        }

        return HostPte.Present(protNone.Pfn, flags | (protNone.Value & YoungDirty));
    }

    /// <summary>The frame a PROT_NONE entry still maps.</summary>
    /// <exception cref="InvalidHostPteException"><paramref name="pte"/> is not a PROT_NONE entry.</exception>
    public static Pfn ProtNonePfn(HostPte pte)
    {
        Require(pte, HostPteKind.ProtNone, "a PROT_NONE entry");
        return pte.Pfn;
    }

    /// <summary>A readable form for messages: <c>none</c>, the present form, <c>swap slot 0x12</c>, <c>migration pfn:0x34 [W A D]</c>, <c>protnone pfn:0x56 [- A]</c>, or <c>corrupt 0x…</c>.</summary>
    public static string Describe(HostPte pte)
    {
        var value = pte.Value;
        if (value == 0)
        {
            return "none";
        }

        if (pte.IsPresent)
        {
            return pte.ToString();
        }

        var hex = "0x" + value.ToString("x", CultureInfo.InvariantCulture);
        var youngDirty = (pte.IsAccessed ? " A" : string.Empty) + (pte.IsDirty ? " D" : string.Empty);
        return TryClassifyNonPresent(value) switch
        {
            HostPteKind.Swap => $"{hex} swap slot 0x{(value & HostPte.PfnMask) >> Paging.PageShift:x}",
            HostPteKind.Migration =>
                $"{hex} migration {pte.Pfn} [{((value & KindMask) == MigrationWriteKind ? "W" : "R")}{youngDirty}]",
            HostPteKind.ProtNone => $"{hex} protnone {pte.Pfn} [-{youngDirty}]",
            _ => $"{hex} corrupt (no valid non-present encoding)",
        };
    }

    private static HostPteKind ClassifyNonPresent(HostPte pte)
    {
        var kind = TryClassifyNonPresent(pte.Value);
        if (kind == HostPteKind.None)
        {
            ThrowCorrupt(pte);
        }

        return kind;
    }

    /// <summary>The kind of a nonzero non-present value, or <see cref="HostPteKind.None"/> when it is corrupt.</summary>
    private static HostPteKind TryClassifyNonPresent(ulong value) => (value & KindMask) switch
    {
        SwapKind when (value & ~SwapBits) == 0 => HostPteKind.Swap,
        MigrationReadKind or MigrationWriteKind when (value & ~PfnEntryBits) == 0 => HostPteKind.Migration,
        ProtNoneKind when (value & ~PfnEntryBits) == 0 => HostPteKind.ProtNone,
        _ => HostPteKind.None,
    };

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowCorrupt(HostPte pte) =>
        throw new InvalidHostPteException(
            pte,
            $"host PTE 0x{pte.Value:x} is corrupt: a non-present entry must have kind 1 to 4 in bits 1..3 and no bits outside 1..3, 5..6 and 12..51 (swap: 1..3 and 12..51 only)");

    private static void Require(HostPte pte, HostPteKind kind, string what, string paramName = "pte")
    {
        if (Classify(pte) != kind)
        {
            throw new InvalidHostPteException(pte, $"{Describe(pte)} is not {what}", paramName);
        }
    }

    private static void CheckPfn(Pfn pfn)
    {
        if (pfn.Value > Pfn.MaxValue)
        {
            throw new ArgumentOutOfRangeException(
                nameof(pfn), pfn, $"{pfn} does not fit a PTE: frame numbers are 0 to 0x{Pfn.MaxValue:x} (40 bits)");
        }
    }
}
