namespace Hypervisor.GuestMmu.Ept;

/// <summary>What a zap did.</summary>
/// <param name="Zapped">Present leaves made <see cref="Spte.Empty"/> (a large leaf counts once).</param>
/// <param name="ZappedFrames">4 KiB frames those leaves mapped (512 per 2 MiB leaf).</param>
/// <param name="Dirty">Zapped leaves that were dirty and were reported to the sink.</param>
/// <param name="TablesFreed">Page tables released (only <see cref="EptPageTable.ZapAll{TSink}"/> releases tables).</param>
public readonly record struct ZapResult(long Zapped, long ZappedFrames, long Dirty, long TablesFreed)
{
    /// <summary>True when a present leaf was removed, so vCPU TLBs must be flushed before the caller's frames change.</summary>
    public bool FlushNeeded => Zapped != 0;
}
