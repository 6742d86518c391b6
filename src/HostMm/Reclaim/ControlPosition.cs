namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// One input of the multi-gen LRU's refault controller (Linux's <c>struct ctrl_pos</c>): a tier's refaults and its
/// pages evicted or protected, both over the generation being evicted plus the moving average of earlier ones, and the
/// gain its rate is weighted with.
/// </summary>
/// <param name="Refaulted">Refaults of pages evicted from the tier.</param>
/// <param name="Total">Pages of the tier that eviction evicted or protected.</param>
/// <param name="Gain">The weight of the rate (the set point and the process variable use different gains, leaving a margin).</param>
public readonly record struct ControlPosition(long Refaulted, long Total, int Gain);
