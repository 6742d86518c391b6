namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// What one allocation has spent of the retries direct reclaim grants it beyond its counted rounds, each kind against
/// its own bound in <see cref="Reclaimer"/>: rounds retried because reclaim made progress that another thread took,
/// sleeps waiting for pages other reclaimers hold isolated, and sleeps before declaring out of memory.
/// </summary>
internal struct RetryBudget
{
    /// <summary>Rounds retried uncounted because some reclaimer freed pages meanwhile.</summary>
    public int Progress;

    /// <summary>Millisecond sleeps waiting for isolated pages or a busy mmap lock.</summary>
    public int Waits;

    /// <summary>Millisecond sleeps after three failed last-resort rounds while pages remain listed.</summary>
    public int Throttles;
}
