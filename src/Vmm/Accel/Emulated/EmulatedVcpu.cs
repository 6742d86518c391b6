using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Accel.Emulated;

/// <summary>
/// One vCPU on the interpreter: an <see cref="X86Cpu"/> over the vCPU's own <see cref="MmuContext"/> (soft TLB and
/// walker), run in slices of instructions so that the stop token and the instruction limit are checked between them.
/// </summary>
/// <remarks>Threads: as <see cref="IVcpu"/>. The MMU context joins TLB shootdowns only while <see cref="Run"/> is in
/// guest mode, so a host invalidation waits at most one block for this vCPU.</remarks>
public sealed class EmulatedVcpu : IVcpu, IDisposable
{
    // About 6 ms of guest code at the interpreter's speed: how late a stop request or a timeout may be seen.
    private const long BudgetPerSlice = 1 << 20;

    private readonly long _instructionLimit;

    /// <summary>Creates vCPU <paramref name="id"/> over <paramref name="context"/>.</summary>
    /// <param name="context">The vCPU's memory view (owned: disposed with the vCPU).</param>
    /// <param name="bus">The VM's devices.</param>
    /// <param name="codeMap">The VM's map of pages holding decoded code.</param>
    /// <param name="stop">The VM's stop signal.</param>
    /// <param name="id">The vCPU's id.</param>
    /// <param name="instructionLimit">Instructions after which <see cref="Run"/> stops with <see cref="VmStopKind.InstructionLimit"/> (0: none).</param>
    public EmulatedVcpu(MmuContext context, DeviceBus bus, CodePageMap codeMap, VmStopSignal stop, int id, long instructionLimit)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(instructionLimit);
        Context = context;
        Cpu = new X86Cpu(context, bus, codeMap, stop, id);
        Id = id;
        _instructionLimit = instructionLimit;
    }

    /// <inheritdoc />
    public int Id { get; }

    /// <summary>The interpreter.</summary>
    public X86Cpu Cpu { get; }

    /// <summary>The vCPU's memory view: soft TLB, walker, EPT fault path.</summary>
    public MmuContext Context { get; }

    /// <inheritdoc />
    public VcpuCounters Counters
    {
        get
        {
            var stats = Cpu.Stats;
            return new VcpuCounters
            {
                PortIo = stats.PortIo,
                Mmio = stats.MmioAccesses,
                Interpreter = stats,
                Tlb = Context.Tlb.Stats,
                Walker = Context.Walker.Stats,
            };
        }
    }

    /// <inheritdoc />
    public void SetInitialState(in InitialCpuState state) => Cpu.Load(state);

    /// <inheritdoc />
    public VcpuExit Run(CancellationToken stop)
    {
        while (true)
        {
            var budget = _instructionLimit > 0 ? Math.Min(BudgetPerSlice, _instructionLimit - Cpu.InstructionsRetired) : BudgetPerSlice;
            if (budget <= 0)
            {
                return new VcpuExit(VmStopKind.InstructionLimit, $"stopped at the instruction limit of {_instructionLimit} at RIP 0x{Cpu.Rip:x}");
            }

            var exit = Cpu.Run(budget);
            switch (exit.Reason)
            {
                case CpuExitReason.StopRequested:
                    return new VcpuExit(VmStopKind.GuestExit, exit.Detail);
                case CpuExitReason.Halted:
                    return new VcpuExit(VmStopKind.Halted, exit.Detail);
                case CpuExitReason.TripleFault:
                    return new VcpuExit(VmStopKind.TripleFault, exit.Detail);
                case CpuExitReason.InternalError:
                    return new VcpuExit(VmStopKind.InternalError, exit.Detail);
                case CpuExitReason.HostOutOfMemory:
                    return new VcpuExit(VmStopKind.HostOutOfMemory, exit.Detail);
                case CpuExitReason.MemoryFailure:
                    return new VcpuExit(VmStopKind.MemoryFailure, exit.Detail);
            }

            if (stop.IsCancellationRequested)
            {
                return new VcpuExit(VmStopKind.Cancelled, $"cancelled at RIP 0x{Cpu.Rip:x}");
            }
        }
    }

    /// <inheritdoc />
    public RegisterSnapshot CaptureRegisters() => Cpu.CaptureRegisters();

    /// <summary>Leaves the TLB shootdown group.</summary>
    public void Dispose() => Context.Dispose();
}
