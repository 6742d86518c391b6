namespace Hypervisor.GuestMmu.Ept;

/// <summary>What an aging pass found.</summary>
/// <param name="Young">Present leaves that were young (a large leaf counts once).</param>
/// <param name="Cleared">Young leaves made old (0 for a test-only pass).</param>
/// <param name="Dirty">Leaves reported dirty to the sink (access tracking drops W, so writable young leaves are reported).</param>
public readonly record struct AgeResult(long Young, long Cleared, long Dirty)
{
    /// <summary>True when any leaf in the range was young: the answer to clear_young / clear_flush_young.</summary>
    public bool AnyYoung => Young != 0;
}
