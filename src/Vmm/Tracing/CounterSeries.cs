namespace Hypervisor.Vmm.Tracing;

/// <summary>One VM's samples in a <see cref="CounterHistory"/>, oldest first.</summary>
/// <param name="Id">The VM's number in the history, from 0 in the order the VMs were built.</param>
/// <param name="Label">What the VM was (its image, or its size and memory options).</param>
/// <param name="Step">The time between kept samples (the sampling interval, doubled each time the track was thinned).</param>
/// <param name="Samples">The samples; the last one was taken when the VM was torn down or the history stopped.</param>
/// <param name="WatchedName">The name of the VM's watched figure (<see cref="CounterSample.Watched"/>); null when it has none.</param>
public sealed record CounterSeries(int Id, string Label, TimeSpan Step, IReadOnlyList<CounterSample> Samples, string? WatchedName = null);
