using System.Globalization;
using System.Runtime.ExceptionServices;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Accel;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// One simulated host shared by the VMs that run on it: one <see cref="HostMm.Host"/> (one frame pool, one reclaimer
/// and swap area), sized for <see cref="VmCount"/> VMs of <see cref="VmOptions.MemoryBytes"/> each, and the host-wide
/// daemons (the background reclaimer, kswapd). Each VM attached to it (<see cref="Vm(VmOptions, Devices.GuestConsole, HostMachine)"/>)
/// gets its own host process and, under <see cref="VmOptions.HostMemoryBytes"/>, its own memory cgroup whose
/// <c>memory.max</c> is that limit: the limit is per VM, as a VMM under systemd gives each guest its own scope.
/// </summary>
/// <remarks>
/// <para>A <see cref="Vm"/> built without a machine creates a private one for one VM and owns it; that VM behaves as
/// before this type existed (same host size, same cgroup name, kswapd for the length of its run).</para>
/// <para>Lifetime: dispose every VM attached to the machine before the machine (the host's frames back their RAM).</para>
/// <para>Threads: <see cref="Run"/> runs each VM's boot vCPU on its own thread; the counters may be read from any
/// thread. Host-wide daemons start in <see cref="StartDaemons"/> and stop in <see cref="StopDaemons"/>; a daemon's
/// failure is reported through the callback given there (a shared run cancels every VM, each reports it).</para>
/// </remarks>
public sealed class HostMachine : IDisposable
{
    /// <summary>Host RAM beyond the guests' own, whatever their number: host page tables, the zero page, slack.</summary>
    public const ulong FixedOverheadBytes = 32UL << 20;

    /// <summary>Each VM's guest RAM divided by this (1/8) is added for its host page tables and EPT tables.</summary>
    public const ulong PerVmOverheadDivisor = 8;

    /// <summary>Host RAM is rounded up to this (4 MiB: a whole number of 2 MiB blocks on each of the two nodes).</summary>
    public const ulong SizeUnitBytes = 4UL << 20;

    private readonly Lock _attachLock = new();
    private ReclaimDaemon? _kswapd;
    private KsmDaemon? _ksmd;
    private bool _daemonsRunning;
    private int _attached;
    private bool _disposed;

    /// <summary>Builds the host for <paramref name="vmCount"/> VMs of <paramref name="options"/>.</summary>
    /// <param name="options">The host-level settings (guest RAM per VM, host memory limit, swap, LRU policy); validated.</param>
    /// <param name="vmCount">How many VMs the host is sized for, from 1 to <see cref="MaxVmCount(ulong, int?)"/>.</param>
    /// <exception cref="VmOptionsException">An option breaks its rule, or <paramref name="vmCount"/> is out of range
    /// (<see cref="VmOptionRule.VmCount"/>), or the swap device cannot be built (<see cref="VmOptionRule.Swap"/>).</exception>
    public HostMachine(VmOptions options, int vmCount = 1)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ValidateVmCount(options, vmCount);
        Options = options;
        VmCount = vmCount;
        var hostOptions = new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = HostBytesFor(options.MemoryBytes, vmCount, options.NumaNodes), NodeCount = options.EffectiveNumaNodes },
            LegacyChangePte = options.LegacyChangePte,
            TransparentHugePages = options.TransparentHugePages,
        };
        if (options.HostMemoryBytes is not null)
        {
            // The frame budget stays roomy (guest RAM, host page tables, the swap cache's transient pages); the limit
            // each guest feels is its own cgroup's memory.max, as a VMM under systemd or a container sees it.
            hostOptions = hostOptions with
            {
                Swap = options.EffectiveSwap(vmCount),
                Reclaim = new ReclaimOptions { Policy = options.LruPolicy, SecondaryAging = options.SecondaryAging },
            };
        }

        try
        {
            Host = new Host(hostOptions);
        }
        catch (SwapConfigurationException exception)
        {
            throw new VmOptionsException(VmOptionRule.Swap, nameof(VmOptions.Swap), hostOptions.Swap, $"swap: {exception.Message.Replace($" (Parameter '{exception.ParamName}')", string.Empty, StringComparison.Ordinal)}");
        }

        if (options.Trace is { } trace)
        {
            Host.Trace = new Tracing.TracingHostTrace(trace);
        }

        Host.Ksm.PagesToScan = options.KsmPagesToScan;
        Host.Ksm.SleepMilliseconds = options.KsmSleepMilliseconds;
    }

    /// <summary>The host-level settings the machine was built with (guest RAM per VM, host memory limit, swap, LRU).</summary>
    public VmOptions Options { get; }

    /// <summary>How many VMs the host is sized for (and may attach).</summary>
    public int VmCount { get; }

    /// <summary>VMs attached so far.</summary>
    public int AttachedVms => Volatile.Read(ref _attached);

    /// <summary>The shared host: one frame pool, one reclaimer, one swap area for every VM.</summary>
    public Host Host { get; }

    /// <summary>
    /// The background reclaimer of the run in progress or last run (under <see cref="VmOptions.HostMemoryBytes"/>), else
    /// null. One for the whole host: it reclaims from every VM's cgroup.
    /// </summary>
    public ReclaimDaemon? ReclaimDaemon => Volatile.Read(ref _kswapd);

    /// <summary>
    /// Called on the background reclaimer's thread after each of its steps that scanned pages, with it paused (see
    /// <see cref="Machine.ReclaimDaemon"/>); set before <see cref="Run"/> or <see cref="StartDaemons"/>.
    /// </summary>
    public Action? ReclaimStepped { get; set; }

    /// <summary>
    /// The KSM scanner thread (ksmd) of the run in progress or last run, when <see cref="VmOptions.Ksm"/> is set, else
    /// null. One for the whole host: it merges across every VM's mergeable RAM.
    /// </summary>
    public KsmDaemon? KsmDaemon => Volatile.Read(ref _ksmd);

    /// <summary>
    /// Called on ksmd's thread after each of its batches that scanned pages, with ksmd paused (see
    /// <see cref="Machine.KsmDaemon"/>); set before <see cref="Run"/> or <see cref="StartDaemons"/>.
    /// </summary>
    public Action? KsmStepped { get; set; }

    /// <summary>
    /// The scanner's <c>run</c> mode set when the daemons start under <see cref="VmOptions.Ksm"/>: merge (the default),
    /// or stop, for a caller that switches merging on later (<see cref="Host"/>'s <c>Ksm.Run</c>), as the KSM demo does
    /// once every guest has filled its pages.
    /// </summary>
    public KsmRunMode KsmRunAtStart { get; set; } = KsmRunMode.Merge;

    /// <summary>
    /// Called on the constructing thread once a VM's guest RAM is mapped and registered as its memslot, before the
    /// image is loaded: the VM's index on this machine and its RAM (process, base address, size). The per-VM seam for
    /// host policy on guest RAM (e.g. marking it mergeable, as QEMU's <c>mem-merge=on</c>). Set before VMs attach.
    /// </summary>
    public Action<int, GuestRam>? GuestRamMapped { get; set; }

    /// <summary>The host RAM, in bytes, of a machine for <paramref name="vmCount"/> VMs of <paramref name="guestMemoryBytes"/>
    /// each: the larger of the host's minimum and each VM's RAM plus 1/<see cref="PerVmOverheadDivisor"/> plus
    /// <see cref="FixedOverheadBytes"/>, rounded up to <see cref="SizeUnitBytes"/>. For one VM this is the host a VM
    /// always had.</summary>
    /// <param name="guestMemoryBytes">Guest RAM of each VM.</param>
    /// <param name="vmCount">How many VMs, at least 1.</param>
    public static ulong HostBytesFor(ulong guestMemoryBytes, int vmCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vmCount);
        var perVm = guestMemoryBytes + (guestMemoryBytes / PerVmOverheadDivisor);
        var bytes = Math.Max(HostMemoryOptions.MinTotalBytes, (perVm * (ulong)vmCount) + FixedOverheadBytes);
        return (bytes + SizeUnitBytes - 1) & ~(SizeUnitBytes - 1);
    }

    /// <summary>
    /// The host RAM, in bytes, of a machine with <paramref name="numaNodes"/> NUMA nodes (<see cref="VmOptions.NumaNodes"/>)
    /// for <paramref name="vmCount"/> VMs of <paramref name="guestMemoryBytes"/> each: null gives
    /// <see cref="HostBytesFor(ulong, int)"/> (two nodes sharing that RAM); a node count gives every node what a one-node
    /// host would need (each VM's RAM plus 1/<see cref="PerVmOverheadDivisor"/>, plus <see cref="FixedOverheadBytes"/>) in
    /// whole 2 MiB blocks, so all guest RAM fits on any one node, at least the host's minimum in all.
    /// </summary>
    /// <param name="guestMemoryBytes">Guest RAM of each VM.</param>
    /// <param name="vmCount">How many VMs, at least 1.</param>
    /// <param name="numaNodes">The node count, or null for the default host.</param>
    public static ulong HostBytesFor(ulong guestMemoryBytes, int vmCount, int? numaNodes)
    {
        if (numaNodes is not { } nodes)
        {
            return HostBytesFor(guestMemoryBytes, vmCount);
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vmCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        var perVm = guestMemoryBytes + (guestMemoryBytes / PerVmOverheadDivisor);
        var block = Hypervisor.Notifier.Paging.LargePageSize;
        var perNode = ((perVm * (ulong)vmCount) + FixedOverheadBytes + block - 1) & ~(block - 1);
        var unit = block * (ulong)nodes;
        var bytes = Math.Max(HostMemoryOptions.MinTotalBytes, perNode * (ulong)nodes);
        return (bytes + unit - 1) / unit * unit;
    }

    /// <summary>
    /// The most VMs of <paramref name="guestMemoryBytes"/> one host holds: those whose <see cref="HostBytesFor(ulong, int)"/> stays
    /// within the simulated host's largest RAM (<see cref="HostMemoryOptions.MaxTotalBytes"/>), as <c>-m</c> is bounded
    /// by <see cref="VmOptions.MaxMemoryBytes"/>.
    /// </summary>
    /// <param name="guestMemoryBytes">Guest RAM of each VM.</param>
    public static int MaxVmCount(ulong guestMemoryBytes) => MaxVmCount(guestMemoryBytes, null);

    /// <summary>
    /// The most VMs of <paramref name="guestMemoryBytes"/> one host of <paramref name="numaNodes"/> nodes holds (see
    /// <see cref="HostBytesFor(ulong, int, int?)"/>: with a node count, every node holds all of them).
    /// </summary>
    /// <param name="guestMemoryBytes">Guest RAM of each VM.</param>
    /// <param name="numaNodes">The node count, or null for the default host.</param>
    public static int MaxVmCount(ulong guestMemoryBytes, int? numaNodes)
    {
        var perVm = guestMemoryBytes + (guestMemoryBytes / PerVmOverheadDivisor);
        var budget = (HostMemoryOptions.MaxTotalBytes / (ulong)Math.Max(1, numaNodes ?? 1)) & ~(Hypervisor.Notifier.Paging.LargePageSize - 1);
        var count = perVm == 0 ? int.MaxValue : budget <= FixedOverheadBytes ? 0 : (budget - FixedOverheadBytes) / perVm;
        return (int)Math.Min(count, int.MaxValue);
    }

    /// <summary>Checks that <paramref name="vmCount"/> VMs of <paramref name="options"/> can share one host.</summary>
    /// <param name="options">The VMs' options (guest RAM, accelerator).</param>
    /// <param name="vmCount">How many VMs.</param>
    /// <exception cref="VmOptionsException">The count is below 1, above <see cref="MaxVmCount(ulong, int?)"/>, or above 1 on kvm
    /// (<see cref="VmOptionRule.VmCount"/>).</exception>
    public static void ValidateVmCount(VmOptions options, int vmCount)
    {
        ArgumentNullException.ThrowIfNull(options);
        var c = CultureInfo.InvariantCulture;
        if (vmCount < 1)
        {
            throw new VmOptionsException(VmOptionRule.VmCount, "VmCount", vmCount, string.Create(c, $"the VM count must be at least 1, got {vmCount}"));
        }

        if (vmCount > 1 && options.Accelerator != AcceleratorKind.Emulated)
        {
            throw new VmOptionsException(
                VmOptionRule.VmCount,
                "VmCount",
                vmCount,
                string.Create(c, $"{vmCount} VMs need the emulated accelerator: several VMs share one simulated host (one frame pool, one reclaimer), and {options.Accelerator} keeps guest RAM outside it"));
        }

        var max = MaxVmCount(options.MemoryBytes, options.NumaNodes);
        if (vmCount > max)
        {
            throw new VmOptionsException(
                VmOptionRule.VmCount,
                "VmCount",
                vmCount,
                string.Create(c, $"{vmCount} VMs of {options.MemoryBytes >> 20} MiB do not fit one host: at most {max} (each needs its RAM plus 1/{PerVmOverheadDivisor}, the host {FixedOverheadBytes >> 20} MiB more{(options.NumaNodes is { } nodes ? $", on each of {nodes} NUMA nodes" : string.Empty)}, and the simulated host has at most {HostMemoryOptions.MaxTotalBytes >> 30} GiB)"));
        }
    }

    /// <summary>
    /// Starts the host-wide daemons for a run: the background reclaimer (kswapd) under a host memory limit, and the KSM
    /// scanner (ksmd) under <see cref="VmOptions.Ksm"/>, its run mode set to <see cref="KsmRunAtStart"/>. They stop in
    /// <see cref="StopDaemons"/>.
    /// </summary>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped a daemon.</param>
    /// <exception cref="InvalidOperationException">The daemons are already running.</exception>
    public void StartDaemons(Action<Exception>? onFailure = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_daemonsRunning)
        {
            throw new InvalidOperationException("the host's daemons are already running: stop them before starting them again");
        }

        _daemonsRunning = true;
        var kswapd = Options.HostMemoryBytes is not null
            ? new ReclaimDaemon(Host.Reclaim, onFailure, afterStep: ReclaimStepped is { } stepped ? () => stepped() : null, trace: Options.Trace)
            : null;
        Volatile.Write(ref _kswapd, kswapd);
        if (Options.Ksm)
        {
            Host.Ksm.Run = KsmRunAtStart;
            Volatile.Write(ref _ksmd, new KsmDaemon(Host.Ksm, onFailure, afterStep: KsmStepped is { } ksmStepped ? () => ksmStepped() : null, trace: Options.Trace));
        }
    }

    /// <summary>Stops the host-wide daemons and waits for them; their counters and failure stay readable. Idempotent.</summary>
    public void StopDaemons()
    {
        _daemonsRunning = false;
        _kswapd?.Dispose();
        _ksmd?.Dispose();
    }

    /// <summary>
    /// Runs every VM of <paramref name="vms"/> (attached to this machine, booted) at once, each boot vCPU on its own
    /// thread, with the host-wide daemons running, until all have stopped. A daemon's failure cancels every VM, and
    /// each reports it as an internal error. An exception from one VM's run (a bug) cancels the others and is rethrown
    /// after all have stopped.
    /// </summary>
    /// <param name="vms">The VMs, in index order.</param>
    /// <param name="cancellationToken">Cancels every VM (<see cref="VmStopKind.Cancelled"/>).</param>
    /// <returns>Each VM's result, in the order of <paramref name="vms"/>.</returns>
    /// <exception cref="ArgumentException">A VM is not attached to this machine.</exception>
    public IReadOnlyList<VmRunResult> Run(IReadOnlyList<Vm> vms, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vms);
        for (var i = 0; i < vms.Count; i++)
        {
            if (!ReferenceEquals(vms[i].Machine, this))
            {
                throw new ArgumentException($"VM {i} is not attached to this host machine: build it with this machine", nameof(vms));
            }
        }

        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var results = new VmRunResult[vms.Count];
        var failures = new Exception?[vms.Count];
        var threads = new Thread[vms.Count];
        for (var i = 0; i < vms.Count; i++)
        {
            var index = i;
            threads[i] = new Thread(() =>
            {
                try
                {
                    results[index] = vms[index].Run(stopAll.Token);
                }
                catch (Exception exception)
                {
                    failures[index] = exception;
                    CancelQuietly(stopAll);
                }
            })
            { IsBackground = true, Name = string.Create(CultureInfo.InvariantCulture, $"vm{index}-vcpu0") };
        }

        StartDaemons(_ => CancelQuietly(stopAll));
        try
        {
            foreach (var thread in threads)
            {
                thread.Start();
            }

            foreach (var thread in threads)
            {
                thread.Join();
            }
        }
        finally
        {
            StopDaemons();
        }

        if (failures.FirstOrDefault(f => f is not null) is { } failure)
        {
            ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return results;
    }

    /// <summary>The host-wide counters now (read from any thread): frames of the one pool, processes, resident pages.</summary>
    public HostStats Stats => Host.Stats;

    /// <summary>Stops the daemons and frees the host. Every VM attached must have been disposed first.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        StopDaemons();
        _disposed = true;
        Host.Dispose();
    }

    /// <summary>
    /// A new host process (and, under a host memory limit, a new cgroup of that limit) for the next VM: its index on
    /// this machine, counted from 0. The only VM is in cgroup <c>vm</c> as before; several are in <c>vm0</c>, <c>vm1</c> …
    /// and prefer the NUMA nodes in turn.
    /// </summary>
    /// <exception cref="InvalidOperationException">The machine already holds <see cref="VmCount"/> VMs.</exception>
    /// <exception cref="VmOptionsException">The VM's guest RAM or host memory limit differs from the machine's.</exception>
    internal (int Index, HostProcess Process) AttachVm(VmOptions options)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (options.MemoryBytes != Options.MemoryBytes || options.HostMemoryBytes != Options.HostMemoryBytes)
        {
            throw new VmOptionsException(
                VmOptionRule.VmCount,
                options.MemoryBytes != Options.MemoryBytes ? nameof(VmOptions.MemoryBytes) : nameof(VmOptions.HostMemoryBytes),
                options.MemoryBytes != Options.MemoryBytes ? options.MemoryBytes : options.HostMemoryBytes,
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"a VM on this host machine must have its guest RAM ({Options.MemoryBytes} bytes) and host memory limit ({Options.HostMemoryBytes?.ToString(CultureInfo.InvariantCulture) ?? "none"}), got {options.MemoryBytes} bytes and {options.HostMemoryBytes?.ToString(CultureInfo.InvariantCulture) ?? "none"}"));
        }

        int index;
        lock (_attachLock)
        {
            if (_attached >= VmCount)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"the host machine is sized for {VmCount} VM(s) and holds them all"));
            }

            index = _attached++;
        }

        var cgroup = options.HostMemoryBytes is { } limit
            ? Host.Reclaim.CreateCgroup(VmCount == 1 ? "vm" : string.Create(CultureInfo.InvariantCulture, $"vm{index}"), (long)(limit / Hypervisor.Notifier.Paging.PageSize))
            : null;
        return (index, Host.CreateMm(index % Host.Memory.NodeCount, cgroup));
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The run already ended; its results report the failure.
        }
    }
}
