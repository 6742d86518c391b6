using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>One vCPU of a <see cref="KvmMachine"/>, sending its port I/O and MMIO exits to the VM's devices.</summary>
/// <remarks>Threads: as <see cref="IVcpu"/>; KVM itself requires the ioctls of a vCPU to come from one thread at a time.</remarks>
public sealed class KvmVcpu : IVcpu
{
    private const ulong EferLma = 1UL << 10;

    private readonly KvmMachine _machine;
    private readonly DeviceBus _bus;
    private readonly VmStopSignal _signal;

    /// <summary>Wraps vCPU <paramref name="id"/> of <paramref name="machine"/>.</summary>
    /// <param name="machine">The KVM machine.</param>
    /// <param name="id">The vCPU's id.</param>
    /// <param name="bus">The VM's devices.</param>
    /// <param name="signal">The VM's stop signal.</param>
    public KvmVcpu(KvmMachine machine, int id, DeviceBus bus, VmStopSignal signal)
    {
        ArgumentNullException.ThrowIfNull(machine);
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(signal);
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, machine.CpuCount);
        _machine = machine;
        _bus = bus;
        _signal = signal;
        Id = id;
    }

    /// <inheritdoc />
    public int Id { get; }

    /// <inheritdoc />
    public VcpuCounters Counters => _machine.CountersOf(Id);

    /// <inheritdoc />
    public void SetInitialState(in InitialCpuState state) => _machine.SetInitialState(Id, state);

    /// <inheritdoc />
    public VcpuExit Run(CancellationToken stop) => _machine.Run(Id, _bus, _signal, stop);

    /// <inheritdoc />
    public RegisterSnapshot CaptureRegisters()
    {
        var r = _machine.GetRegisters(Id);
        var s = _machine.GetSpecialRegisters(Id);
        var longMode = (s.Efer & EferLma) != 0;
        return new RegisterSnapshot
        {
            Rax = r.Rax,
            Rbx = r.Rbx,
            Rcx = r.Rcx,
            Rdx = r.Rdx,
            Rsi = r.Rsi,
            Rdi = r.Rdi,
            Rbp = r.Rbp,
            Rsp = r.Rsp,
            R8 = r.R8,
            R9 = r.R9,
            R10 = r.R10,
            R11 = r.R11,
            R12 = r.R12,
            R13 = r.R13,
            R14 = r.R14,
            R15 = r.R15,
            Rip = r.Rip,
            Rflags = r.Rflags,
            Cpl = s.Cs.Dpl,
            Bitness = longMode && s.Cs.L != 0 ? 64 : s.Cs.Db != 0 ? 32 : 16,
            Cr0 = s.Cr0,
            Cr2 = s.Cr2,
            Cr3 = s.Cr3,
            Cr4 = s.Cr4,
            Efer = s.Efer,
            Cs = s.Cs.Selector,
            Ss = s.Ss.Selector,
            Ds = s.Ds.Selector,
            GdtBase = s.Gdt.Base,
            GdtLimit = s.Gdt.Limit,
            IdtBase = s.Idt.Base,
            IdtLimit = s.Idt.Limit,
        };
    }
}
