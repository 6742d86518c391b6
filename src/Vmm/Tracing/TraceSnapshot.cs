namespace Hypervisor.Vmm.Tracing;

/// <summary>What a <see cref="TraceRing"/> held when it was read.</summary>
/// <param name="Events">The kept events, in the order they were recorded.</param>
/// <param name="Recorded">How many events were recorded in all.</param>
/// <param name="Dropped">How many of them are not in <paramref name="Events"/> (overwritten when the ring wrapped).</param>
/// <param name="Capacity">The ring's size in events.</param>
public sealed record TraceSnapshot(IReadOnlyList<TraceEvent> Events, long Recorded, long Dropped, int Capacity);
