using System.Diagnostics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A virtual machine on the emulated accelerator: guest RAM is anonymous memory of a simulated host process
/// (memslot 0 at gpa 0), the secondary MMU (EPT) is subscribed to that process's notifier chain, and the boot
/// vCPU runs on the interpreter with the PC devices. Everything the MMU does is counted.
/// </summary>
/// <remarks>Lock order and threading: <see cref="Run"/> runs the boot vCPU on the calling thread; host
/// operations (swap, KSM, mprotect …) may run on other threads at the same time and reach the vCPU only
/// through the notifier chain and TLB shootdowns. <see cref="Progress"/> may be read from any thread.</remarks>
public sealed class Vm : IDisposable
{
    /// <summary>Log category of the VM.</summary>
    public const string LogCategory = "Hypervisor.Vmm.Machine";

    private const long BudgetPerSlice = 1 << 20;

    private readonly ILogger _logger;
    private readonly MmuContext[] _contexts;
    private long _elapsedTicks;
    private HostForkScenario? _forker;

    /// <summary>Builds the VM: host process, guest RAM, memslot, MMU, devices and vCPUs.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option breaks its rule.</exception>
    public Vm(VmOptions options, GuestConsole console)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(console);
        options.Validate();
        Options = options;
        _logger = (ILogger?)options.LoggerFactory?.CreateLogger(LogCategory) ?? NullLogger.Instance;
        var hostBytes = Math.Max(HostMemoryOptions.MinTotalBytes, options.MemoryBytes + (options.MemoryBytes / 8) + (32UL << 20));
        hostBytes = (hostBytes + (4UL << 20) - 1) & ~((4UL << 20) - 1);
        Host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = hostBytes } });
        Process = Host.CreateMm();
        var ramBase = Process.Mmap(options.MemoryBytes, Protection.Read | Protection.Write);
        Ram = new GuestRam(Process, ramBase, options.MemoryBytes);
        Shootdown = new TlbShootdown();
        Mmu = new TdpMmu(Shootdown);
        if (options.LoggerFactory?.CreateLogger(LoggingMmuTrace.LogCategory) is { } mmuLogger && mmuLogger.IsEnabled(LogLevel.Trace))
        {
            Mmu.Trace = new LoggingMmuTrace(mmuLogger);
        }

        Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), options.MemoryBytes, ramBase, new HostProcessBacking(Process));
        Stop = new VmStopSignal();
        Bus = new DeviceBus(options.LoggerFactory?.CreateLogger(DeviceBus.LogCategory));
        Console = console;
        Devices = PcDevices.Attach(Bus, console, Stop, options.CpuCount, options.MemoryBytes);
        CodeMap = new CodePageMap(options.MemoryBytes);
        X86Cpu.PrepareHotPaths();
        _contexts = new MmuContext[options.CpuCount];
        var cpus = new X86Cpu[options.CpuCount];
        for (var id = 0; id < options.CpuCount; id++)
        {
            _contexts[id] = new MmuContext(Mmu, id);
            cpus[id] = new X86Cpu(_contexts[id], Bus, CodeMap, Stop, id);
        }

        Cpus = cpus;
    }

    /// <summary>The options the VM was built with.</summary>
    public VmOptions Options { get; }

    /// <summary>The simulated host.</summary>
    public Host Host { get; }

    /// <summary>The host process whose anonymous memory is guest RAM.</summary>
    public HostProcess Process { get; }

    /// <summary>Guest RAM.</summary>
    public GuestRam Ram { get; }

    /// <summary>The memslots (owned by <see cref="Mmu"/>).</summary>
    public MemslotSet Memslots => Mmu.Memslots;

    /// <summary>The vCPU TLB shootdown.</summary>
    public TlbShootdown Shootdown { get; }

    /// <summary>The secondary MMU.</summary>
    public TdpMmu Mmu { get; }

    /// <summary>The stop signal devices post to.</summary>
    public VmStopSignal Stop { get; }

    /// <summary>The port and MMIO bus.</summary>
    public DeviceBus Bus { get; }

    /// <summary>The guest console.</summary>
    public GuestConsole Console { get; }

    /// <summary>The PC devices.</summary>
    public PcDevices Devices { get; }

    /// <summary>Pages holding decoded code.</summary>
    public CodePageMap CodeMap { get; }

    /// <summary>The vCPUs' interpreters (index = vCPU id; only vCPU 0 runs).</summary>
    public IReadOnlyList<X86Cpu> Cpus { get; }

    /// <summary>The image loaded by <see cref="Boot"/>, if any.</summary>
    public LoadedImage? Image { get; private set; }

    /// <summary>The boot protocol <see cref="Boot"/> used.</summary>
    public BootProtocol Protocol { get; private set; }

    /// <summary>Loads <paramref name="image"/> into guest RAM, writes the boot protocol's data and sets the boot vCPU's state.</summary>
    /// <exception cref="BootImageException">The image does not fit, or does not support the protocol.</exception>
    public LoadedImage Boot(ElfImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var loaded = ImageLoader.Load(image, Ram);
        Protocol = GuestBoot.Resolve(loaded, Options.Protocol);
        var state = GuestBoot.Setup(Ram, loaded, Protocol, Options.CommandLine);
        Cpus[0].Load(state);
        Image = loaded;
        _logger.LogInformation("Booting via {Protocol} at RIP 0x{Rip:x} with {Memory} MiB", Protocol, state.Rip, Options.MemoryBytes >> 20);
        return loaded;
    }

    /// <summary>Runs the boot vCPU until the guest exits, halts or breaks, a limit is hit, or <paramref name="cancellationToken"/> fires.</summary>
    /// <returns>How the run ended (with both the QEMU-style <see cref="VmRunResult.ExitStatus"/> and the guest's own
    /// <see cref="VmRunResult.GuestExitCode"/>) and the counters.</returns>
    public VmRunResult Run(CancellationToken cancellationToken = default)
    {
        var cpu = Cpus[0];
        var forker = Options.HostForkInterval is { } interval ? new HostForkScenario(Process, interval) : null;
        _forker = forker;
        var clock = Stopwatch.StartNew();
        var limit = Options.InstructionLimit;
        var timeout = Options.Timeout;
        CpuExit exit;
        VmStopKind kind;
        try
        {
            while (true)
            {
                var budget = limit > 0 ? Math.Min(BudgetPerSlice, limit - cpu.InstructionsRetired) : BudgetPerSlice;
                if (budget <= 0)
                {
                    exit = new CpuExit(CpuExitReason.BudgetExhausted, $"stopped at the instruction limit of {limit} at RIP 0x{cpu.Rip:x}");
                    kind = VmStopKind.InstructionLimit;
                    break;
                }

                exit = cpu.Run(budget);
                Volatile.Write(ref _elapsedTicks, clock.Elapsed.Ticks);
                if (exit.Reason != CpuExitReason.BudgetExhausted)
                {
                    kind = exit.Reason switch
                    {
                        CpuExitReason.StopRequested => VmStopKind.GuestExit,
                        CpuExitReason.Halted => VmStopKind.Halted,
                        CpuExitReason.TripleFault => VmStopKind.TripleFault,
                        _ => VmStopKind.InternalError,
                    };
                    break;
                }

                if (cancellationToken.IsCancellationRequested || (timeout is { } t && clock.Elapsed >= t))
                {
                    exit = new CpuExit(CpuExitReason.BudgetExhausted, cancellationToken.IsCancellationRequested
                        ? $"cancelled at RIP 0x{cpu.Rip:x}"
                        : $"stopped after the timeout of {timeout!.Value.TotalSeconds:0.#} s at RIP 0x{cpu.Rip:x}");
                    kind = VmStopKind.Timeout;
                    break;
                }
            }
        }
        finally
        {
            clock.Stop();
            forker?.Dispose();
            Console.Flush();
        }

        if (forker?.Failure is { } hostFailure)
        {
            exit = new CpuExit(CpuExitReason.InternalError, $"the host fork scenario failed: {hostFailure.Message}");
            kind = VmStopKind.InternalError;
        }

        var status = kind switch
        {
            VmStopKind.GuestExit => Stop.Request?.ExitStatus ?? 0,
            VmStopKind.Halted => 0,
            VmStopKind.TripleFault or VmStopKind.InternalError => 3,
            _ => 4,
        };
        int? guestExitCode = kind switch
        {
            VmStopKind.GuestExit => Stop.Request is { } request ? VmRunResult.GuestExitCodeOf(request) : 0,
            VmStopKind.Halted => 0,
            _ => null,
        };
        if (kind is VmStopKind.TripleFault)
        {
            exit = exit with { Detail = exit.Detail + Environment.NewLine + cpu.DescribeState() };
        }

        if (kind is VmStopKind.TripleFault or VmStopKind.InternalError)
        {
            _logger.LogInformation("VM stopped: {Detail}", exit.Detail);
        }

        Volatile.Write(ref _elapsedTicks, clock.Elapsed.Ticks);
        return Snapshot(kind, exit.Detail, status, guestExitCode);
    }

    /// <summary>The counters so far, for a live view (read from any thread; figures may lag by one block).</summary>
    public VmRunResult Progress() => Snapshot(VmStopKind.Timeout, "running", 0, null);

    /// <summary>Tears the VM down: the host process exits (the MMU is released through its notifier) and the host is freed.</summary>
    public void Dispose()
    {
        foreach (var context in _contexts)
        {
            context.Dispose();
        }

        Mmu.Dispose();
        if (!Process.HasExited)
        {
            Process.Exit();
        }

        Host.Dispose();
    }

    private VmRunResult Snapshot(VmStopKind kind, string detail, int status, int? guestExitCode) => new()
    {
        Kind = kind,
        Detail = detail,
        ExitStatus = status,
        GuestExitCode = guestExitCode,
        Elapsed = TimeSpan.FromTicks(Volatile.Read(ref _elapsedTicks)),
        Cpu = Cpus[0].Stats,
        Mmu = Mmu.Stats,
        Tlb = _contexts[0].Tlb.Stats,
        Walker = _contexts[0].Walker.Stats,
        CodePageInvalidations = CodeMap.Invalidations,
        HostForks = _forker?.Forks ?? 0,
    };
}
