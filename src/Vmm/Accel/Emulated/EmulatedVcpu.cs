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
    /// <summary>Instructions per slice by default: about 6 ms of guest code at the interpreter's speed, how late a stop
    /// request or a timeout may be seen.</summary>
    public const long DefaultSliceInstructions = 1 << 20;

    private readonly long _instructionLimit;

    /// <summary>Creates vCPU <paramref name="id"/> over <paramref name="context"/>.</summary>
    /// <param name="context">The vCPU's memory view (owned: disposed with the vCPU).</param>
    /// <param name="bus">The VM's devices.</param>
    /// <param name="codeMap">The VM's map of pages holding decoded code.</param>
    /// <param name="stop">The VM's stop signal.</param>
    /// <param name="id">The vCPU's id.</param>
    /// <param name="instructionLimit">Instructions after which <see cref="Run"/> stops with <see cref="VmStopKind.InstructionLimit"/> (0: none).</param>
    /// <param name="apic">The vCPU's local APIC, or null for one of its own.</param>
    public EmulatedVcpu(MmuContext context, DeviceBus bus, CodePageMap codeMap, VmStopSignal stop, int id, long instructionLimit, LocalApic? apic = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(instructionLimit);
        Context = context;
        Cpu = new X86Cpu(context, bus, codeMap, stop, id, apic);
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

    /// <summary>
    /// Instructions per slice (at least 1): the stop token, the instruction limit and <see cref="BetweenSlices"/> are
    /// checked between slices. Set before <see cref="Run"/>.
    /// </summary>
    public long SliceInstructions
    {
        get;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            field = value;
        }
    } = DefaultSliceInstructions;

    /// <summary>
    /// Called on the vCPU's thread after every slice, when this vCPU has no memory access or fault in flight (a
    /// quiescent point for audits: with one vCPU running, the guest touches no memory until it returns). Set before
    /// <see cref="Run"/>; an exception it throws ends the run as an internal error naming it.
    /// </summary>
    public Action? BetweenSlices { get; set; }

    /// <summary>
    /// When set, held by the vCPU's thread while each slice runs (and released between slices): another thread that
    /// takes it waits until the vCPU has no memory access or fault in flight. Set before <see cref="Run"/>.
    /// </summary>
    public Lock? SliceGate { get; set; }

    /// <inheritdoc />
    public void SetInitialState(in InitialCpuState state) => Cpu.Load(state);

    /// <inheritdoc />
    public VcpuExit Run(CancellationToken stop)
    {
        while (true)
        {
            var slice = SliceInstructions;
            var budget = _instructionLimit > 0 ? Math.Min(slice, _instructionLimit - Cpu.InstructionsRetired) : slice;
            if (budget <= 0)
            {
                return new VcpuExit(VmStopKind.InstructionLimit, $"stopped at the instruction limit of {_instructionLimit} at RIP 0x{Cpu.Rip:x}");
            }

            CpuExit exit;
            if (SliceGate is { } gate)
            {
                lock (gate)
                {
                    exit = Cpu.Run(budget);
                }
            }
            else
            {
                exit = Cpu.Run(budget);
            }

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

            if (BetweenSlices is { } hook)
            {
                try
                {
                    hook();
                }
                catch (Exception exception)
                {
                    return new VcpuExit(VmStopKind.InternalError, $"the between-slices hook failed at RIP 0x{Cpu.Rip:x}: {exception.GetType().Name}: {exception.Message}");
                }
            }
        }
    }

    /// <inheritdoc />
    public RegisterSnapshot CaptureRegisters() => Cpu.CaptureRegisters();

    /// <summary>Leaves the TLB shootdown group.</summary>
    public void Dispose() => Context.Dispose();
}
