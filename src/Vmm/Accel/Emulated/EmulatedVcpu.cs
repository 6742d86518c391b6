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
    private long _memoryFaultsResolved;

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
    /// The VMM's answer to a memory-fault exit (KVM's <c>KVM_EXIT_MEMORY_FAULT</c>: a guest access the host mapping behind
    /// its memslot refused, e.g. a write to guest RAM made read-only). Called on the vCPU's thread outside guest mode and
    /// outside <see cref="SliceGate"/>, with the run's stop token; true when the VMM resolved the fault (restored the
    /// permission, or waited until whoever removed it restored it): the vCPU runs on and restarts the faulting
    /// instruction. False, or no handler, stops the vCPU with an internal error naming the access. Set before <see cref="Run"/>.
    /// </summary>
    public Func<MemoryFault, CancellationToken, bool>? MemoryFaultHandler { get; set; }

    /// <summary>Memory-fault exits the <see cref="MemoryFaultHandler"/> resolved (the vCPU ran on).</summary>
    public long MemoryFaultsResolved => Interlocked.Read(ref _memoryFaultsResolved);

    /// <summary>
    /// When set, held by the vCPU's thread while each slice runs (and released between slices): another thread that
    /// takes it waits until the vCPU has no memory access or fault in flight. Set before <see cref="Run"/>.
    /// </summary>
    public Lock? SliceGate { get; set; }

    /// <summary>
    /// The VM's halt coordinator, when the vCPU is one of several that wake each other with IPIs (set by the accelerator
    /// before <see cref="Run"/>): a halt with nothing of its own to wake for then sleeps until another vCPU's interrupt,
    /// and an application processor waits for its start-up IPI. Null: a halt stops the vCPU (one vCPU alone).
    /// </summary>
    public HaltCoordinator? Halts
    {
        get;
        internal set
        {
            field = value;
            if (value is not null)
            {
                var cpuKick = Cpu.Apic.Kick;
                Cpu.Apic.Kick = () =>
                {
                    cpuKick?.Invoke();
                    value.Kick(Id);
                };
            }
        }
    }

    /// <inheritdoc />
    public void SetInitialState(in InitialCpuState state) => Cpu.Load(state);

    /// <inheritdoc />
    /// <remarks>An application processor (with <see cref="Halts"/> set) first sleeps until the guest starts it with
    /// INIT–SIPI (or the VM ends), then runs in real mode at the start-up vector's page.</remarks>
    public VcpuExit Run(CancellationToken stop)
    {
        if (Halts is { } halts && !Cpu.Apic.IsRunning && AwaitStartup(halts, stop) is { } notStarted)
        {
            return notStarted;
        }

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
                case CpuExitReason.Halted when Halts is null:
                    return new VcpuExit(VmStopKind.Halted, exit.Detail);
                case CpuExitReason.Halted:
                    if (SleepInHalt(Halts, exit.Detail, stop) is { } haltExit)
                    {
                        return haltExit;
                    }

                    continue;
                case CpuExitReason.TripleFault:
                    return new VcpuExit(VmStopKind.TripleFault, exit.Detail);
                case CpuExitReason.InternalError:
                    return new VcpuExit(VmStopKind.InternalError, exit.Detail);
                case CpuExitReason.HostOutOfMemory:
                    return new VcpuExit(VmStopKind.HostOutOfMemory, exit.Detail);
                case CpuExitReason.MemoryFailure:
                    return new VcpuExit(VmStopKind.MemoryFailure, exit.Detail);
                case CpuExitReason.MemoryFault:
                    if (!ResolveMemoryFault(stop))
                    {
                        return new VcpuExit(VmStopKind.InternalError, exit.Detail);
                    }

                    break;
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

    /// <summary>Hands a memory-fault exit to <see cref="MemoryFaultHandler"/>; true when the vCPU may run on.</summary>
    private bool ResolveMemoryFault(CancellationToken stop)
    {
        if (MemoryFaultHandler is not { } handler || Cpu.LastMemoryFault is not { } fault || !handler(fault, stop))
        {
            return false;
        }

        Interlocked.Increment(ref _memoryFaultsResolved);
        return true;
    }

    /// <summary>
    /// A halt with nothing of the vCPU's own to wake it: sleeps until another vCPU's IPI (or NMI) gives it something it
    /// can take (null: resume), or the VM ends (cancelled), or every vCPU is asleep (the VM is halted).
    /// </summary>
    private VcpuExit? SleepInHalt(HaltCoordinator halts, string detail, CancellationToken stop)
    {
        if (Cpu.TimedHaltDeadline is { } deadline)
        {
            return SleepUntil(halts, deadline, stop);
        }

        while (true)
        {
            var othersAwake = halts.Sleep(Id);

            // An interrupt that arrived between the CPU's HLT and the sleep found this vCPU awake and did not count.
            if (Cpu.CanWakeFromHalt)
            {
                halts.Kick(Id);
                return null;
            }

            if (!othersAwake)
            {
                return new VcpuExit(VmStopKind.Halted, Cpu.Apic.Router?.Apics.Count > 1 ? $"every vCPU is halted with nothing that can wake it (vCPU {Id}: {detail})" : detail);
            }

            if (!halts.Wait(Id, stop))
            {
                return new VcpuExit(VmStopKind.Cancelled, $"cancelled while halted at RIP 0x{Cpu.Rip:x}");
            }

            if (Cpu.CanWakeFromHalt)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// A timed halt (another vCPU was running when this one halted with a timer armed): sleeps until an interrupt it can
    /// take arrives, or the running vCPUs' clocks (<see cref="PeerClock"/>) reach <paramref name="deadline"/>, or every
    /// other vCPU is asleep too; then moves this vCPU's clock up to the others' (or to the deadline) and resumes, so
    /// the vCPUs' virtual clocks stay within a few of the sleep's polls of each other.
    /// </summary>
    private VcpuExit? SleepUntil(HaltCoordinator halts, long deadline, CancellationToken stop)
    {
        while (true)
        {
            var othersAwake = halts.Sleep(Id);
            if (Cpu.CanWakeFromHalt)
            {
                halts.WakeSelf(Id);
                Cpu.AdvanceClockTo(PeerClock?.Invoke(Id) ?? 0);
                return null;
            }

            if (!othersAwake)
            {
                // Nobody runs to move time on: the earliest timer wins, as with one vCPU.
                halts.WakeSelf(Id);
                Cpu.AdvanceClockTo(Math.Max(deadline, PeerClock?.Invoke(Id) ?? 0));
                return null;
            }

            var woken = halts.Wait(Id, TimedHaltPoll, stop);
            if (stop.IsCancellationRequested)
            {
                return new VcpuExit(VmStopKind.Cancelled, $"cancelled while halted at RIP 0x{Cpu.Rip:x}");
            }

            var peers = PeerClock?.Invoke(Id) ?? 0;
            if (woken)
            {
                Cpu.AdvanceClockTo(peers);
                if (Cpu.CanWakeFromHalt)
                {
                    return null;
                }

                continue;
            }

            if (peers >= deadline)
            {
                halts.WakeSelf(Id);
                Cpu.AdvanceClockTo(peers);
                return null;
            }
        }
    }

    /// <summary>
    /// An application processor before its start: asleep until a start-up IPI has been accepted by its APIC, then loaded
    /// with the real-mode start-up state (null: run); the VM's end while waiting is a cancelled exit, and every vCPU
    /// asleep (the boot vCPU halted for good) a halted one.
    /// </summary>
    private VcpuExit? AwaitStartup(HaltCoordinator halts, CancellationToken stop)
    {
        while (!Cpu.Apic.IsRunning)
        {
            if (!halts.Sleep(Id))
            {
                return new VcpuExit(VmStopKind.Halted, $"every vCPU is halted with nothing that can wake it (vCPU {Id} was never started)");
            }

            if (Cpu.Apic.IsRunning)
            {
                halts.Kick(Id);
                break;
            }

            if (!halts.Wait(Id, stop))
            {
                return new VcpuExit(VmStopKind.Cancelled, $"vCPU {Id} was not started before the VM stopped");
            }
        }

        Cpu.Load(InitialCpuState.ForStartupIpi((byte)Cpu.Apic.StartupVector));

        // Its TSC starts where the running vCPUs' clocks are, as the BIOS synchronises the TSCs at boot.
        Cpu.AdvanceClockTo(PeerClock?.Invoke(Id) ?? 0);
        return null;
    }

    /// <summary>How often a timed halt looks at the other vCPUs' clocks while it sleeps.</summary>
    public static readonly TimeSpan TimedHaltPoll = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// With several vCPUs: the latest TSC among the vCPUs other than the given one that are awake (0 when none is); a
    /// halted vCPU's clock catches up to it when it wakes.
    /// </summary>
    public Func<int, long>? PeerClock { get; set; }

    /// <inheritdoc />
    public RegisterSnapshot CaptureRegisters() => Cpu.CaptureRegisters();

    /// <summary>Leaves the TLB shootdown group.</summary>
    public void Dispose() => Context.Dispose();
}
