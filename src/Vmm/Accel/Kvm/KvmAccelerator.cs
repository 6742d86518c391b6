using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The kvm accelerator: a <see cref="KvmMachine"/> on /dev/kvm whose vCPUs send their port I/O and MMIO exits to the
/// VM's device bus. Guest RAM is the machine's anonymous mapping, registered with KVM as memslot 0.
/// </summary>
public sealed class KvmAccelerator : IAccelerator
{
    /// <summary>Log category of the kvm accelerator.</summary>
    public const string LogCategory = "Hypervisor.Vmm.Accel.Kvm";

    private readonly KvmVcpu[] _vcpus;

    /// <summary>Creates the KVM VM with its RAM and vCPUs.</summary>
    /// <param name="memoryBytes">Guest RAM in bytes (see <see cref="KvmMachine"/>).</param>
    /// <param name="cpuCount">vCPUs to create.</param>
    /// <param name="bus">The VM's devices.</param>
    /// <param name="signal">The VM's stop signal.</param>
    /// <param name="logger">Where creation and stops are logged at Debug level; null for none.</param>
    /// <exception cref="KvmUnavailableException">/dev/kvm is missing or a KVM call failed.</exception>
    public KvmAccelerator(ulong memoryBytes, int cpuCount, DeviceBus bus, VmStopSignal signal, ILogger? logger)
    {
        Machine = new KvmMachine(memoryBytes, cpuCount, logger);
        _vcpus = new KvmVcpu[cpuCount];
        for (var id = 0; id < cpuCount; id++)
        {
            _vcpus[id] = new KvmVcpu(Machine, id, bus, signal);
        }
    }

    /// <summary>The KVM machine.</summary>
    public KvmMachine Machine { get; }

    /// <inheritdoc />
    public AcceleratorKind Kind => AcceleratorKind.Kvm;

    /// <inheritdoc />
    public IGuestPhysicalMemory Memory => Machine.Memory;

    /// <inheritdoc />
    public IReadOnlyList<IVcpu> Vcpus => _vcpus;

    /// <summary>Closes the vCPUs and the VM and unmaps guest RAM.</summary>
    public void Dispose() => Machine.Dispose();
}
