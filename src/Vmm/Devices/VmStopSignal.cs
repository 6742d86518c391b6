namespace Hypervisor.Vmm.Devices;

/// <summary>
/// Where devices post a request to stop the VM. The first request wins and later ones are ignored; the run loop
/// polls <see cref="Request"/> (a single volatile read) after each exit, or subscribes to <see cref="Stopped"/>.
/// Thread-safe: any vCPU thread may post.
/// </summary>
public sealed class VmStopSignal
{
    private VmStop? _request;

    /// <summary>Raised once, on the posting thread, when the first stop request arrives.</summary>
    public event Action<VmStop>? Stopped;

    /// <summary>The first stop request, or null while the VM should keep running.</summary>
    public VmStop? Request => Volatile.Read(ref _request);

    /// <summary>True once any device has asked the VM to stop.</summary>
    public bool IsStopRequested => Request is not null;

    /// <summary>Posts a stop request; returns false (and changes nothing) if one was already posted.</summary>
    /// <param name="stop">The request.</param>
    /// <returns>True if this request is the one that stops the VM.</returns>
    public bool Post(VmStop stop)
    {
        ArgumentNullException.ThrowIfNull(stop);
        if (Interlocked.CompareExchange(ref _request, stop, null) is not null)
        {
            return false;
        }

        Stopped?.Invoke(stop);
        return true;
    }
}
