namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>
/// Holds one VM's vCPU at a console line until the demo lets it go: the vCPU's thread calls <see cref="Arrive"/> from
/// the console write that ends the line (a port write: no guest memory access is in flight), and blocks there until
/// <see cref="Release"/>. While every VM is held, no guest access races the host.
/// </summary>
/// <remarks>Threads: one vCPU arrives; the demo's thread waits and releases. <see cref="Abandon"/> releases for good
/// (the demo ends early), so no vCPU stays blocked.</remarks>
internal sealed class VmHold
{
    private readonly object _lock = new();
    private string? _heldAt;
    private bool _abandoned;

    /// <summary>The console line the VM is held at, or null while it runs.</summary>
    public string? HeldAt
    {
        get
        {
            lock (_lock)
            {
                return _heldAt;
            }
        }
    }

    /// <summary>Blocks the calling vCPU until <see cref="Release"/> or <see cref="Abandon"/>.</summary>
    /// <param name="line">The line the VM stops at.</param>
    public void Arrive(string line)
    {
        lock (_lock)
        {
            if (_abandoned)
            {
                return;
            }

            _heldAt = line;
            Monitor.PulseAll(_lock);
            while (_heldAt is not null && !_abandoned)
            {
                Monitor.Wait(_lock);
            }
        }
    }

    /// <summary>Lets the held VM run on.</summary>
    public void Release()
    {
        lock (_lock)
        {
            _heldAt = null;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Releases the VM and every later arrival: the demo no longer holds it.</summary>
    public void Abandon()
    {
        lock (_lock)
        {
            _abandoned = true;
            _heldAt = null;
            Monitor.PulseAll(_lock);
        }
    }
}
