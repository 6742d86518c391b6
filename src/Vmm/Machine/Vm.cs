using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Vmm.Acpi;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Tracing;
using Hypervisor.Vmm.Accel.Emulated;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Devices.Dma;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A virtual machine on either accelerator (<see cref="VmOptions.Accelerator"/>): it owns guest RAM, the PC devices
/// and the boot, and runs the vCPUs of its <see cref="IAccelerator"/> into one <see cref="VmRunResult"/>. On the
/// emulated accelerator guest RAM is anonymous memory of a simulated host process (memslot 0 at gpa 0) under the
/// secondary MMU (EPT), subscribed to that process's notifier chain, and everything the MMU does is counted; on kvm it
/// is a real anonymous mapping registered with /dev/kvm.
/// </summary>
/// <remarks>
/// <para>Threads: <see cref="Run"/> runs the boot vCPU on the calling thread; host operations (swap, KSM, mprotect …)
/// may run on other threads at the same time and reach the vCPU only through the notifier chain and TLB shootdowns.
/// <see cref="Progress"/> may be read from any thread.</para>
/// <para>vCPUs: the accelerator creates every vCPU; only the boot vCPU runs. Application processors (started by
/// INIT–SIPI through their local APIC) will each run on their own thread with the same stop token as the boot vCPU;
/// the first whose exit ends the VM cancels that token so the others return, and <see cref="VmRunResult.Vcpus"/>
/// already carries every vCPU's state.</para>
/// </remarks>
public sealed class Vm : IDisposable
{
    /// <summary>Log category of the VM.</summary>
    public const string LogCategory = "Hypervisor.Vmm.Machine";

    private readonly ILogger _logger;
    private readonly bool _ownsMachine;
    private readonly Tracing.CounterHistory? _history;
    private HostForkScenario? _forker;
    private long _runStart;
    private long _elapsedTicks;
    private VmRunResult? _last;

    /// <summary>
    /// Builds the VM: guest RAM (and, when emulated, a host of its own — a <see cref="HostMachine"/> for one VM, which
    /// the VM owns — with its process, memslot and MMU), devices and vCPUs.
    /// </summary>
    /// <exception cref="VmOptionsException">An option breaks its rule.</exception>
    /// <exception cref="KvmUnavailableException">The kvm accelerator was asked for and /dev/kvm cannot be used.</exception>
    public Vm(VmOptions options, GuestConsole console)
        : this(options, console, null, shared: false)
    {
    }

    /// <summary>
    /// Builds an emulated VM on <paramref name="machine"/>, a host shared with other VMs: its own host process (and
    /// cgroup under <see cref="VmOptions.HostMemoryBytes"/>) on the machine's host, its own memslot, MMU, devices and
    /// vCPUs. The machine's daemons run while the machine runs its VMs (<see cref="HostMachine.Run"/>); the caller
    /// disposes the machine after the VM.
    /// </summary>
    /// <param name="options">The VM's options; guest RAM and the host memory limit must be the machine's, and the
    /// host-wide settings (swap, LRU policy, secondary aging) are the machine's whatever these say.</param>
    /// <param name="console">The VM's console.</param>
    /// <param name="machine">The shared host.</param>
    /// <exception cref="VmOptionsException">An option breaks its rule, differs from the machine's, or asks for kvm.</exception>
    /// <exception cref="InvalidOperationException">The machine already holds as many VMs as it was sized for.</exception>
    public Vm(VmOptions options, GuestConsole console, HostMachine machine)
        : this(options, console, machine ?? throw new ArgumentNullException(nameof(machine)), shared: true)
    {
    }

    private Vm(VmOptions options, GuestConsole console, HostMachine? sharedMachine, bool shared)
    {
        Debug.Assert(shared == sharedMachine is not null, "a shared VM names its machine");
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(console);
        options.Validate();
        if (sharedMachine is not null && options.Accelerator != AcceleratorKind.Emulated)
        {
            throw new VmOptionsException(
                VmOptionRule.VmCount,
                nameof(VmOptions.Accelerator),
                options.Accelerator,
                $"a VM on a shared host machine needs the emulated accelerator: {options.Accelerator} keeps guest RAM outside the simulated host");
        }

        Options = options;
        _logger = (ILogger?)options.LoggerFactory?.CreateLogger(LogCategory) ?? NullLogger.Instance;
        Stop = new VmStopSignal();
        Bus = new DeviceBus(options.LoggerFactory?.CreateLogger(DeviceBus.LogCategory));
        Console = console;
        Devices = PcDevices.Attach(Bus, console, Stop, options.CpuCount, options.MemoryBytes);
        if (options.Accelerator == AcceleratorKind.Kvm)
        {
            var kvm = new KvmAccelerator(options.MemoryBytes, options.CpuCount, Bus, Stop, options.LoggerFactory?.CreateLogger(KvmAccelerator.LogCategory));
            Accelerator = kvm;
            if (options.Ksm)
            {
                kvm.Machine.MarkMergeable();
            }
        }
        else
        {
            _ownsMachine = sharedMachine is null;
            var machine = sharedMachine ?? new HostMachine(options, 1);
            try
            {
                (Index, Process, Shootdown, Mmu, GuestMemory) = MapGuestRam(machine, options);
            }
            catch
            {
                if (_ownsMachine)
                {
                    machine.Dispose();
                }

                throw;
            }

            Machine = machine;
            Host = machine.Host;
            if (options.DmaCache is { } dmaCache)
            {
                Dma = new DmaEngine(Mmu!.Memslots, Process!, dmaCache);
                Dma.Attach(Bus);
            }

            var emulated = new EmulatedAccelerator(GuestMemory, Mmu, Bus, Stop, options.CpuCount, options.InstructionLimit, Devices.Interrupts);
            foreach (var vcpu in emulated.Cpus)
            {
                vcpu.Cpu.Tier = options.Tier;
                vcpu.Cpu.JitThreshold = options.JitThreshold;
                vcpu.Cpu.BackgroundCompilation = options.JitCompile == JitCompileMode.Background;
            }

            if (options.LoggerFactory is { } loggers)
            {
                foreach (var vcpu in emulated.Cpus)
                {
                    vcpu.Cpu.Log = loggers.CreateLogger(X86Cpu.LogCategory);
                }
            }

            // The platform's time is the boot vCPU's virtual clock (retired instructions plus time skipped in HLT, which
            // guest TSC writes do not move): the PIT and the RTC run on it, the PM timer counts it, and kvmclock's wall
            // clock is the host's time when it was 0. On kvm the devices keep the host's clock.
            var bootCpu = emulated.Cpus[0].Cpu;
            bootCpu.PlatformTimers = Devices.Timers;
            Devices.PmTimer.Clock = () => bootCpu.VirtualTime;
            var bootWallClock = DateTimeOffset.UtcNow;
            foreach (var vcpu in emulated.Cpus)
            {
                vcpu.Cpu.BootWallClock = bootWallClock;
            }
            Accelerator = emulated;

            // Charted by a command's --report / --json when it runs under one (the ambient history flows into demos).
            _history = Tracing.CounterHistory.Current;
            _history?.Attach(this);
        }
    }

    /// <summary>The options the VM was built with.</summary>
    public VmOptions Options { get; }

    /// <summary>The counter history sampling this VM (the one current when it was built); null when none was.</summary>
    public Tracing.CounterHistory? History => _history;

    /// <summary>What runs the vCPUs.</summary>
    public IAccelerator Accelerator { get; }

    /// <summary>The emulated accelerator (its interpreters and decoded-code map); null on kvm.</summary>
    public EmulatedAccelerator? Emulated => Accelerator as EmulatedAccelerator;

    /// <summary>True on the emulated accelerator, where guest RAM lives in the simulated host under the secondary MMU.</summary>
    [MemberNotNullWhen(true, nameof(Host), nameof(Process), nameof(Memslots), nameof(Shootdown), nameof(Mmu), nameof(Emulated))]
    public bool IsEmulated => Host is not null && Process is not null && Memslots is not null && Shootdown is not null && Mmu is not null && Emulated is not null;

    /// <summary>Guest RAM as the boot loader writes it.</summary>
    public IGuestPhysicalMemory Ram => Accelerator.Memory;

    /// <summary>The simulated host (emulated only; null on kvm); shared with the other VMs of <see cref="Machine"/>.</summary>
    public Host? Host { get; }

    /// <summary>
    /// The host machine the VM runs on (emulated only; null on kvm): its own one-VM machine when built without one,
    /// else the shared machine it was built with.
    /// </summary>
    public HostMachine? Machine { get; }

    /// <summary>The VM's index on <see cref="Machine"/> (0 for a VM with a host of its own, and on kvm).</summary>
    public int Index { get; }

    /// <summary>
    /// Guest RAM as host memory (emulated only; null on kvm): the host process, the base address of memslot 0 and its
    /// size — the range host-side policies (madvise, KSM) apply to.
    /// </summary>
    public GuestRam? GuestMemory { get; }

    /// <summary>The host process whose anonymous memory is guest RAM (emulated only; null on kvm).</summary>
    public HostProcess? Process { get; }

    /// <summary>The memslots, owned by <see cref="Mmu"/> (emulated only; null on kvm, where KVM holds them).</summary>
    public MemslotSet? Memslots => Mmu?.Memslots;

    /// <summary>The vCPU TLB shootdown (emulated only; null on kvm).</summary>
    public TlbShootdown? Shootdown { get; }

    /// <summary>The secondary MMU (emulated only; null on kvm, whose EPT is the host kernel's).</summary>
    public TdpMmu? Mmu { get; }

    /// <summary>
    /// Called on the background reclaimer's thread after each of its steps that scanned pages, with it paused (see
    /// <see cref="Machine.ReclaimDaemon"/>); set before <see cref="Run"/>. An exception stops the VM as an internal error.
    /// For a VM with a host of its own; on a shared machine the hook is the machine's (<see cref="HostMachine.ReclaimStepped"/>).
    /// </summary>
    public Action? ReclaimStepped { get; set; }

    /// <summary>
    /// The background reclaimer of the run in progress or last run (with <see cref="VmOptions.HostMemoryBytes"/> set),
    /// else null: the host machine's, shared with the other VMs on it.
    /// </summary>
    public ReclaimDaemon? ReclaimDaemon => Machine?.ReclaimDaemon;

    /// <summary>The DMA copy engine (with <see cref="VmOptions.DmaCache"/>, emulated only); null otherwise.</summary>
    public DmaEngine? Dma { get; }

    /// <summary>The stop signal devices post to.</summary>
    public VmStopSignal Stop { get; }

    /// <summary>The port and MMIO bus.</summary>
    public DeviceBus Bus { get; }

    /// <summary>The guest console.</summary>
    public GuestConsole Console { get; }

    /// <summary>The PC devices.</summary>
    public PcDevices Devices { get; }

    /// <summary>The image loaded by <see cref="Boot"/>, if any.</summary>
    public LoadedImage? Image { get; private set; }

    /// <summary>The boot protocol <see cref="Boot"/> used.</summary>
    public BootProtocol Protocol { get; private set; }

    /// <summary>Loads <paramref name="image"/> (an ELF image or a bzImage) into guest RAM, writes the boot protocol's data and the ACPI tables, and sets the boot vCPU's state.</summary>
    /// <exception cref="BootImageException">The image does not fit, or does not support the protocol.</exception>
    public LoadedImage Boot(IBootImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var loaded = image.Load(Ram);
        Protocol = GuestBoot.Resolve(loaded, Options.Protocol);
        var acpi = new AcpiTableBuilder(Options.CpuCount, Devices.PowerOff.S5SleepType, IoApic.InitialId).Build();
        var state = GuestBoot.Setup(Ram, loaded, Protocol, Options.CommandLine, acpi, Options.InitialRamDisk);
        Accelerator.Vcpus[0].SetInitialState(state);
        Image = loaded;
        _logger.LogInformation("Booting via {Protocol} at RIP 0x{Rip:x} with {Memory} MiB on {Accelerator}", Protocol, state.Rip, Options.MemoryBytes >> 20, Accelerator.Kind);
        return loaded;
    }

    /// <summary>
    /// Runs the boot vCPU (with a host of its own, also the host's daemons; on a shared machine those run only under
    /// <see cref="HostMachine.Run"/>) until the guest exits, halts or breaks, a limit is hit, or <paramref name="cancellationToken"/>
    /// fires (<see cref="VmStopKind.Cancelled"/>; the VM's own timeout gives <see cref="VmStopKind.Timeout"/>).
    /// </summary>
    /// <returns>How the run ended (with both the QEMU-style <see cref="VmRunResult.ExitStatus"/> and the guest's own
    /// <see cref="VmRunResult.GuestExitCode"/>), every vCPU's registers and the counters.</returns>
    public VmRunResult Run(CancellationToken cancellationToken = default)
    {
        var forker = Options.HostForkInterval is { } interval && Process is not null ? new HostForkScenario(Process, interval, Options.Trace) : null;
        Options.Trace?.NameCurrentThread(Machine is { VmCount: > 1 } ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"vm{Index}-vcpu0") : "vcpu0");
        _forker = forker;
        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // With a host of its own, the host's daemons (kswapd) live as long as the run; on a shared machine they live as
        // long as the machine's run of all its VMs (HostMachine.Run). Either way a daemon's failure cancels the run
        // (reported below as an internal error).
        if (_ownsMachine && Machine is not null)
        {
            Machine.ReclaimStepped = ReclaimStepped;
            Machine.StartDaemons(_ => CancelQuietly(stopAll));
        }

        var start = Stopwatch.GetTimestamp();
        Volatile.Write(ref _runStart, start);
        using var deadline = Options.Timeout is { } timeout ? new RunDeadline(stopAll, start, timeout) : null;
        VcpuExit exit;

        // The vCPU runs on this thread: its faults (and NUMA hinting faults) allocate on its home node.
        var homeNode = HostThread.CurrentNode;
        if (Options.VcpuNode is { } vcpuNode && IsEmulated)
        {
            HostThread.CurrentNode = vcpuNode;
        }

        var applicationProcessors = StartApplicationProcessors(stopAll);
        try
        {
            exit = Accelerator.Vcpus[0].Run(stopAll.Token);
        }
        finally
        {
            // Whatever ended the boot vCPU ends the application processors too.
            CancelQuietly(stopAll);
            foreach (var thread in applicationProcessors.Threads)
            {
                thread.Join();
            }

            HostThread.CurrentNode = homeNode;
            deadline?.Dispose();
            Volatile.Write(ref _elapsedTicks, Stopwatch.GetElapsedTime(start).Ticks);
            Volatile.Write(ref _runStart, 0);
            forker?.Dispose();
            if (_ownsMachine)
            {
                Machine?.StopDaemons();
            }

            Console.Flush();
        }

        // The boot vCPU was cancelled because an application processor ended the VM: that vCPU's exit is the VM's.
        if (exit.Kind == VmStopKind.Cancelled && applicationProcessors.FirstExit is { } apExit)
        {
            exit = apExit;
        }

        var vcpus = Accelerator.Vcpus.Select(v => new VcpuResult(v.Id, v.Counters, v.CaptureRegisters())).ToArray();
        if (exit.Kind == VmStopKind.Cancelled)
        {
            // The vCPU cannot tell why its stop token fired; the VM can: its caller, or its own timeout.
            var rip = vcpus[0].Registers!.Value.Rip;
            exit = deadline is { Fired: true } && !cancellationToken.IsCancellationRequested && Options.Timeout is { } limit
                ? new VcpuExit(VmStopKind.Timeout, $"stopped after the timeout of {limit.TotalSeconds:0.#} s at RIP 0x{rip:x}")
                : new VcpuExit(VmStopKind.Cancelled, $"cancelled at RIP 0x{rip:x}");
        }

        if (forker?.Failure is { } hostFailure)
        {
            exit = new VcpuExit(VmStopKind.InternalError, $"the host fork scenario failed: {hostFailure.Message}");
        }

        if (ReclaimDaemon?.Failure is { } reclaimFailure)
        {
            exit = new VcpuExit(VmStopKind.InternalError, $"the background reclaimer (kswapd) failed: {reclaimFailure.GetType().Name}: {reclaimFailure.Message}");
        }

        exit = exit.Kind switch
        {
            VmStopKind.HostOutOfMemory => exit with { Detail = $"host memory exhausted: {DescribeExhaustion()}: {exit.Detail}" },
            VmStopKind.MemoryFailure => exit with { Detail = $"memory failure on swap device {Host?.Reclaim.Area?.Device.Name}: {exit.Detail}" },
            _ => exit,
        };

        if (VmExitStatus.BreaksTheVm(exit.Kind))
        {
            _logger.LogInformation("VM stopped: {Detail}", exit.Detail);
        }

        var result = Snapshot(exit, vcpus);
        Volatile.Write(ref _last, result);
        return result;
    }

    /// <summary>
    /// The counters so far, for a live view (read from any thread; figures may lag by one block): kind
    /// <see cref="VmStopKind.Running"/> and no registers while the VM runs or before it has; after a run, that run's result.
    /// </summary>
    public VmRunResult Progress()
    {
        if (Volatile.Read(ref _runStart) == 0 && Volatile.Read(ref _last) is { } last)
        {
            return last;
        }

        var vcpus = Accelerator.Vcpus.Select(v => new VcpuResult(v.Id, v.Counters, null)).ToArray();
        return Snapshot(new VcpuExit(VmStopKind.Running, "running"), vcpus);
    }

    /// <summary>
    /// The KSM counters now (read from any thread, also while the VM runs): null unless the VM is emulated and runs under
    /// <see cref="VmOptions.Ksm"/>. After the VM's process exited its own counters read zero.
    /// </summary>
    public KsmSnapshot? Ksm()
    {
        if (!Options.Ksm || Host is null || Process is null)
        {
            return null;
        }

        return new KsmSnapshot
        {
            Host = Host.Ksm.Stats,
            Process = Process.HasExited ? new KsmProcessStats() : Host.Ksm.ProcessStats(Process),
            CowKsm = Host.Stats.CowKsm,
            PagesToScan = Host.Ksm.PagesToScan,
            SleepMilliseconds = Host.Ksm.SleepMilliseconds,
            KsmdSteps = Machine?.KsmDaemon?.Steps ?? 0,
        };
    }

    /// <summary>
    /// The host-memory counters now (read from any thread, also while the VM runs, for a live view): null unless the VM
    /// runs under <see cref="VmOptions.HostMemoryBytes"/>.
    /// </summary>
    public HostMemorySnapshot? HostMemory()
    {
        if (Options.HostMemoryBytes is not { } limit || Host is null || Process is null)
        {
            return null;
        }

        var area = Host.Reclaim.Area;
        var device = area?.Device;
        var zram = (device as FaultInjectingSwapDevice)?.Inner as ZramSwapDevice ?? device as ZramSwapDevice;
        var process = Process.HasExited ? default : Process.Stats;
        return new HostMemorySnapshot
        {
            LimitBytes = limit,
            Policy = Host.Reclaim.Options.Policy,
            SecondaryAging = Host.Reclaim.Options.SecondaryAging,
            SwapDevice = device?.Name ?? "none",
            ZramCompressionRatio = zram?.GetZramStats().CompressionRatio,
            Reclaim = Host.Reclaim.Stats,
            Cgroup = Process.Cgroup.Stats,
            Swap = area?.GetStats() ?? default,
            ResidentPages = process.RssPages,
            SwappedPages = process.SwapEntries,
            KswapdSteps = ReclaimDaemon?.Steps ?? 0,
        };
    }

    /// <summary>
    /// Tears the VM down: the accelerator's vCPUs, then (emulated) the host process exits, which releases the MMU through
    /// its notifier, and a host of its own is freed (a shared machine is its owner's to dispose).
    /// </summary>
    public void Dispose()
    {
        // The history's last sample, while the process and the MMU are whole.
        _history?.Detach(this);
        if (_ownsMachine)
        {
            Machine?.StopDaemons();
        }

        Accelerator.Dispose();
        Dma?.Dispose();
        Mmu?.Dispose();
        if (Process is { HasExited: false })
        {
            Process.Exit();
        }

        if (_ownsMachine)
        {
            Machine?.Dispose();
        }
    }

    /// <summary>
    /// Guest RAM for the emulated accelerator: anonymous memory of a new host process on <paramref name="machine"/>,
    /// registered with the secondary MMU as memslot 0 at gpa 0 (the MMU owns the memslots and subscribes to the
    /// process's notifier chain). The one place the VM sets up its memslots; the machine's
    /// <see cref="HostMachine.GuestRamMapped"/> hook sees the RAM here.
    /// </summary>
    private static (int Index, HostProcess Process, TlbShootdown Shootdown, TdpMmu Mmu, GuestRam Ram) MapGuestRam(HostMachine machine, VmOptions options)
    {
        var (index, process) = machine.AttachVm(options);
        var ramBase = MapRam(process, options);
        var shootdown = new TlbShootdown();
        var mmu = new TdpMmu(shootdown, new TdpMmuOptions { DirtyTracking = options.DirtyTracking ?? DirtyTrackingPolicy.OnZap });
        var logging = options.LoggerFactory?.CreateLogger(LoggingMmuTrace.LogCategory) is { } mmuLogger && mmuLogger.IsEnabled(LogLevel.Trace)
            ? new LoggingMmuTrace(mmuLogger)
            : null;
        TracingMmuTrace? timeline = null;
        if (options.Trace is { } recorder)
        {
            var pid = TraceRecorder.VmPid(index);
            recorder.NameProcess(pid, machine.VmCount == 1 ? "vm" : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"vm{index}"));
            timeline = new TracingMmuTrace(recorder, pid);

            // Ahead of the MMU's own subscription, so each invalidation's span encloses the MMU's zap.
            new TracingNotifier(recorder, pid, process.Notifiers).Register();
            (machine.Host.Trace as TracingHostTrace)?.MapProcess(process, pid);
        }

        mmu.Trace = FanOutMmuTrace.Of(logging, timeline);

        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), options.MemoryBytes, ramBase, new HostProcessBacking(process));
        if (options.Ksm)
        {
            // QEMU's mem-merge=on: guest RAM is madvised MERGEABLE right after it is mapped.
            process.Madvise(ramBase, options.MemoryBytes, Advice.Mergeable);
        }

        var ram = new GuestRam(process, ramBase, options.MemoryBytes);
        machine.GuestRamMapped?.Invoke(index, ram);
        return (index, process, shootdown, mmu, ram);
    }

    /// <summary>
    /// Maps guest RAM in <paramref name="process"/>. Under transparent huge pages the mapping starts on a 2 MiB boundary
    /// (2 MiB more is mapped and the unaligned head and tail unmapped, as QEMU's <c>qemu_ram_mmap</c> aligns): gpa 0 is
    /// 2 MiB-aligned, so gpa and hva agree modulo 2 MiB and every host huge page can be one 2 MiB EPT leaf. Under
    /// <see cref="ThpMode.Madvise"/> the RAM is advised <c>MADV_HUGEPAGE</c>, as QEMU does for guest RAM.
    /// </summary>
    private static Hypervisor.Notifier.Hva MapRam(HostProcess process, VmOptions options)
    {
        if (options.TransparentHugePages == ThpMode.Never)
        {
            return process.Mmap(options.MemoryBytes, Protection.Read | Protection.Write);
        }

        var huge = Hypervisor.Notifier.Paging.LargePageSize;
        var length = (options.MemoryBytes + Hypervisor.Notifier.Paging.PageSize - 1) & ~(Hypervisor.Notifier.Paging.PageSize - 1);
        var reserved = process.Mmap(length + huge, Protection.Read | Protection.Write);
        var aligned = new Hypervisor.Notifier.Hva((reserved.Value + huge - 1) & ~(huge - 1));
        if (aligned.Value > reserved.Value)
        {
            process.Munmap(reserved, aligned.Value - reserved.Value);
        }

        var tail = reserved.Value + length + huge - (aligned.Value + length);
        if (tail > 0)
        {
            process.Munmap(aligned + length, tail);
        }

        if (options.TransparentHugePages == ThpMode.Madvise)
        {
            process.Madvise(aligned, length, Advice.HugePage);
        }

        return aligned;
    }

    /// <summary>
    /// With several vCPUs (interpreter, or KVM with the kernel's irqchip): one host thread per application processor,
    /// which waits for the guest's INIT–SIPI (in the interpreter's halt coordinator, or inside KVM_RUN) and then runs
    /// until the VM ends. The first of them whose exit ends the VM (anything but cancelled)
    /// cancels the others and the boot vCPU through <paramref name="stopAll"/>.
    /// </summary>
    private ApplicationProcessorThreads StartApplicationProcessors(CancellationTokenSource stopAll)
    {
        var group = new ApplicationProcessorThreads();
        IEnumerable<IVcpu> applicationProcessors = Emulated is { Halts: not null } emulated
            ? emulated.Cpus.Skip(1)
            : Accelerator is KvmAccelerator { Machine.HasIrqchip: true } ? Accelerator.Vcpus.Skip(1) : [];
        var vcpuNode = Options.VcpuNode;
        foreach (var vcpu in applicationProcessors)
        {
            var thread = new Thread(() =>
            {
                if (vcpuNode is { } node)
                {
                    HostThread.CurrentNode = node;
                }

                var apExit = vcpu.Run(stopAll.Token);
                if (apExit.Kind != VmStopKind.Cancelled && group.TrySetFirstExit(apExit))
                {
                    CancelQuietly(stopAll);
                }
            })
            {
                Name = $"vcpu{vcpu.Id}",
                IsBackground = true,
            };
            group.Threads.Add(thread);
            thread.Start();
        }

        return group;
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The run already ended; its result reports the failure.
        }
    }

    /// <summary>Why the host had no page: the VM cgroup's limit and how full swap is.</summary>
    private string DescribeExhaustion()
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        var limit = string.Create(c, $"cgroup limit {(Options.HostMemoryBytes ?? 0) >> 20} MiB");
        if (Host?.Reclaim.Area is not { } area)
        {
            return $"{limit}, no swap";
        }

        var swap = area.GetStats();
        return swap.FreeSlots == 0
            ? string.Create(c, $"{limit}, swap full ({swap.TotalSlots} slots of {area.Device.Name})")
            : string.Create(c, $"{limit}, swap {swap.FreeSlots} of {swap.TotalSlots} slots free but nothing reclaimable");
    }

    private VmRunResult Snapshot(VcpuExit exit, VcpuResult[] vcpus)
    {
        var start = Volatile.Read(ref _runStart);
        var elapsed = start != 0 ? Stopwatch.GetElapsedTime(start) : TimeSpan.FromTicks(Volatile.Read(ref _elapsedTicks));
        var request = exit.Kind == VmStopKind.Running ? null : Stop.Request;
        return new VmRunResult
        {
            Accelerator = Accelerator.Kind,
            Kind = exit.Kind,
            Detail = exit.Detail,
            Cause = exit.Cause,
            ExitStatus = VmExitStatus.Of(exit.Kind, request),
            GuestExitCode = VmExitStatus.GuestExitCodeOf(exit.Kind, request),
            StopReason = exit.Kind == VmStopKind.GuestExit ? request?.Reason : null,
            Elapsed = elapsed,
            Vcpus = vcpus,
            Mmu = Mmu?.Stats ?? default,
            CodePageInvalidations = Emulated?.CodeMap.Invalidations ?? 0,
            HostForks = _forker?.Forks ?? 0,
            HostMemory = HostMemory(),
            Ksm = Ksm(),
            Dma = Dma?.Counters,
        };
    }
}
