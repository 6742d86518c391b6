using Hypervisor.Vmm.Accel;

namespace Hypervisor.Vmm.Machine;

/// <summary>The host threads of a run's application processors and the first exit among them that ended the VM.</summary>
internal sealed class ApplicationProcessorThreads
{
    private readonly Lock _lock = new();

    /// <summary>One thread per application processor (none with one vCPU).</summary>
    public List<Thread> Threads { get; } = [];

    /// <summary>The first application processor's exit that ended the VM, if one did.</summary>
    public VcpuExit? FirstExit { get; private set; }

    /// <summary>Records <paramref name="exit"/> unless another application processor's came first.</summary>
    /// <returns>True when it was the first.</returns>
    public bool TrySetFirstExit(VcpuExit exit)
    {
        lock (_lock)
        {
            if (FirstExit is not null)
            {
                return false;
            }

            FirstExit = exit;
            return true;
        }
    }
}
