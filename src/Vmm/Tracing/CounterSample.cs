namespace Hypervisor.Vmm.Tracing;

/// <summary>One sample of a VM's counters in a <see cref="CounterHistory"/>.</summary>
/// <param name="Milliseconds">When it was taken, in milliseconds since the history began.</param>
/// <param name="Resident">The VM's host process's resident pages (RSS).</param>
/// <param name="Swapped">Its pages on swap (VmSwap).</param>
/// <param name="Merged">Its pages mapped to a shared KSM page (ksm_merging_pages); 0 without KSM.</param>
/// <param name="Sptes">Present EPT leaves.</param>
/// <param name="Faults">EPT violations so far (cumulative).</param>
/// <param name="Zapped">Sptes zapped so far (cumulative).</param>
/// <param name="Watched">The VM's watched figure (<see cref="CounterHistory.Watch"/>); -1 before it has one.</param>
public readonly record struct CounterSample(double Milliseconds, long Resident, long Swapped, long Merged, long Sptes, long Faults, long Zapped, long Watched);
