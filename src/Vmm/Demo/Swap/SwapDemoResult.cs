namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>What <see cref="SwapDemo"/> saw: phase 1 (memtest under a host limit) and phase 2 (secondary aging on and off).</summary>
/// <param name="Options">What ran.</param>
/// <param name="Memtest">Phase 1.</param>
/// <param name="Aging">Phase 2: aging on, then off.</param>
public sealed record SwapDemoResult(SwapDemoOptions Options, MemtestPhaseResult Memtest, IReadOnlyList<AgingPhaseRow> Aging)
{
    /// <summary>
    /// True when phase 1 succeeded, both phase 2 guests verified every page, and the hot set stayed more resident with
    /// secondary aging than without it.
    /// </summary>
    public bool Succeeded =>
        Memtest.Succeeded && Aging.Count == 2 && Aging.All(row => row.GuestPassed)
        && Aging[0].SecondaryAging && !Aging[1].SecondaryAging && Aging[0].MeanHotResident > Aging[1].MeanHotResident;
}
