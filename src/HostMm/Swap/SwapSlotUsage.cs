namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A slot's <c>swap_map</c> word, decoded. Layout (16 bits): bits 0–13 the map count (references from swap PTEs,
/// 0 to <see cref="SwapArea.MaxMapCount"/>), bit 14 <c>HAS_CACHE</c> (a swap-cache page owns the slot), the value
/// 0x3FFF alone BAD (never allocated; slot 0 always). A slot is free exactly when its word is 0.
/// </summary>
/// <param name="Word">The raw word.</param>
public readonly record struct SwapSlotUsage(ushort Word)
{
    /// <summary>The word of a BAD slot.</summary>
    public const ushort BadWord = 0x3FFF;

    /// <summary>The HAS_CACHE bit.</summary>
    public const ushort HasCacheFlag = 0x4000;

    /// <summary>The map-count bits.</summary>
    public const ushort CountMask = 0x3FFF;

    /// <summary>True when the slot is free (word 0).</summary>
    public bool IsFree => Word == 0;

    /// <summary>True when the slot is BAD (never allocated).</summary>
    public bool IsBad => Word == BadWord;

    /// <summary>True when a swap-cache page owns the slot.</summary>
    public bool HasCache => (Word & HasCacheFlag) != 0;

    /// <summary>References from swap PTEs (0 for a BAD slot).</summary>
    public int MapCount => IsBad ? 0 : Word & CountMask;

    /// <inheritdoc />
    public override string ToString() =>
        IsFree ? "free" : IsBad ? "bad" : HasCache ? $"count {MapCount} + cache" : $"count {MapCount}";
}
