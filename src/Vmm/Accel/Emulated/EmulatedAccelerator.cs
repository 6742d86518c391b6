using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Accel.Emulated;

/// <summary>
/// The emulated accelerator: every vCPU is an <see cref="X86Cpu"/> interpreter whose memory accesses go through its own
/// soft TLB and two-dimensional walker to the VM's secondary MMU (<see cref="TdpMmu"/>) over the simulated host's
/// memory. The VM sets up that memory and its memslots; this class owns the vCPUs and the decoded-code map they share.
/// </summary>
public sealed class EmulatedAccelerator : IAccelerator
{
    private readonly EmulatedVcpu[] _vcpus;

    /// <summary>Creates <paramref name="cpuCount"/> interpreter vCPUs over <paramref name="mmu"/>.</summary>
    /// <param name="memory">Guest RAM (memslot 0 of <paramref name="mmu"/>), as the boot loader writes it.</param>
    /// <param name="mmu">The VM's secondary MMU.</param>
    /// <param name="bus">The VM's devices.</param>
    /// <param name="stop">The VM's stop signal.</param>
    /// <param name="cpuCount">vCPUs to create (1 or more).</param>
    /// <param name="instructionLimit">Instructions after which each vCPU stops (0: none).</param>
    /// <param name="interrupts">The VM's local APICs (vCPU i gets APIC i); null gives each vCPU one of its own.</param>
    public EmulatedAccelerator(IGuestPhysicalMemory memory, TdpMmu mmu, DeviceBus bus, VmStopSignal stop, int cpuCount, long instructionLimit, InterruptRouter? interrupts = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(mmu);
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        Memory = memory;
        CodeMap = new CodePageMap(memory.Size);
        X86Cpu.PrepareHotPaths();
        _vcpus = new EmulatedVcpu[cpuCount];
        for (var id = 0; id < cpuCount; id++)
        {
            _vcpus[id] = new EmulatedVcpu(new MmuContext(mmu, id), bus, CodeMap, stop, id, instructionLimit, interrupts?.ApicOf(id));
        }

        if (interrupts is not null && cpuCount > 1)
        {
            // The vCPUs wake each other with IPIs: a halt sleeps, and the application processors wait for INIT–SIPI.
            Halts = new HaltCoordinator(cpuCount, id => _vcpus[id].Cpu.Apic.IsRunning);
            var halts = Halts;
            foreach (var vcpu in _vcpus)
            {
                vcpu.Halts = halts;
                vcpu.Cpu.PeersRunning = () => halts.Awake > 1;
                vcpu.PeerClock = PeerClock;
            }
        }
    }

    /// <summary>The latest TSC among the awake vCPUs other than <paramref name="id"/> (0 when none is).</summary>
    private long PeerClock(int id)
    {
        long latest = 0;
        foreach (var other in Halts!.AwakeOthers(id))
        {
            latest = Math.Max(latest, _vcpus[other].Cpu.TscSnapshot);
        }

        return latest;
    }

    /// <summary>Which vCPUs sleep in HLT or wait for their start-up IPI (null with one vCPU or without the VM's APICs).</summary>
    public HaltCoordinator? Halts { get; }

    /// <inheritdoc />
    public AcceleratorKind Kind => AcceleratorKind.Emulated;

    /// <inheritdoc />
    public IGuestPhysicalMemory Memory { get; }

    /// <inheritdoc />
    public IReadOnlyList<IVcpu> Vcpus => _vcpus;

    /// <summary>The interpreter vCPUs, index = vCPU id.</summary>
    public IReadOnlyList<EmulatedVcpu> Cpus => _vcpus;

    /// <summary>Pages holding decoded code, shared by the vCPUs.</summary>
    public CodePageMap CodeMap { get; }

    /// <summary>Takes every vCPU out of the TLB shootdown group; the VM then releases the MMU and the host memory.</summary>
    public void Dispose()
    {
        foreach (var vcpu in _vcpus)
        {
            vcpu.Dispose();
        }
    }
}
