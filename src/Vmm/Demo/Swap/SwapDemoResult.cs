namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// What <see cref="SwapDemo"/> saw: phase 1 (memtest under a host limit), phase 2 (secondary aging on and off) and
/// phase 3 (phase 1's guest under each dirty tracking policy).
/// </summary>
/// <param name="Options">What ran.</param>
/// <param name="Memtest">Phase 1.</param>
/// <param name="Aging">Phase 2: aging on, then off.</param>
/// <param name="DirtyPolicies">Phase 3: the zap-time policy, then the map-time one.</param>
public sealed record SwapDemoResult(SwapDemoOptions Options, MemtestPhaseResult Memtest, IReadOnlyList<AgingPhaseRow> Aging, IReadOnlyList<DirtyPolicyRow> DirtyPolicies)
{
    /// <summary>
    /// True when phase 1 succeeded, both phase 2 guests verified every page, the hot set stayed more resident with
    /// secondary aging than without it, and both phase 3 guests verified every word.
    /// </summary>
    public bool Succeeded =>
        Memtest.Succeeded && Aging.Count == 2 && Aging.All(row => row.GuestPassed)
        && Aging[0].SecondaryAging && !Aging[1].SecondaryAging && Aging[0].MeanHotResident > Aging[1].MeanHotResident
        && DirtyPolicies.All(row => row.GuestPassed);
}
