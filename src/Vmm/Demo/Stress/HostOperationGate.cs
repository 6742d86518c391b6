namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// Orders the stress run's own host operations against the passes that need the host to themselves: each mechanism's
/// operation runs shared (many at once), an audit pass or a memslot remap exclusive (nothing of the demo's in flight).
/// The host's daemons and the vCPUs are stopped separately by the exclusive holder (their own pause and slice gates).
/// </summary>
/// <remarks>Lock order: this gate → the daemons' step locks → the vCPUs' slice gates → the MMU lock. A shared holder never
/// waits for a vCPU (a vCPU may wait for it: a migration entry, an invalidation in progress).</remarks>
internal sealed class HostOperationGate : IDisposable
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);

    /// <summary>Runs <paramref name="operation"/> beside the other mechanisms' operations.</summary>
    public void Shared(Action operation)
    {
        _lock.EnterReadLock();
        try
        {
            operation();
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Runs <paramref name="operation"/> once no mechanism's operation is in flight, none starting until it returns.</summary>
    public void Exclusive(Action operation)
    {
        _lock.EnterWriteLock();
        try
        {
            operation();
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _lock.Dispose();
}
