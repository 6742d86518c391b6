using System.Diagnostics;
using System.Globalization;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// <c>hv demo stress</c>: every host mechanism at once under a running guest, in the style of KVM's mmu_stress_test.
/// <see cref="StressDemoOptions.Vcpus"/> vCPUs run the stress guest (guests/stress.c), each writing and verifying its own
/// region pass after pass, while the host, from its own threads, reclaims and swaps (kswapd under a memory cgroup limit,
/// zram), merges (ksmd), migrates 2 MiB chunks between two NUMA nodes and balances them back (hinting faults from vCPUs on
/// both nodes), splits and collapses huge pages, forks snapshots, storms mprotect read-only and back (guest writes into a
/// window exit to the VMM as memory faults, which it resolves), unmaps and re-maps chunks through memslot changes, and
/// drops pages with MADV_DONTNEED (announced to the guest's verifier); a VMM thread drives the DMA engine, its safe
/// registration cache on the user event channel, over buffers those mechanisms strike too, and verifies every copy
/// (<see cref="DmaMechanism"/>). The host MM auditor and the MMU auditor run all the
/// time on a thread of their own (<see cref="StressAuditor"/>). Every scheduled operation is drawn from
/// <see cref="StressDemoOptions.Seed"/> (<see cref="StressSchedule"/>).
/// </summary>
/// <remarks>Threads: the demo's thread starts and stops everything; the vCPUs run on the VM's threads; each scheduled
/// mechanism and the auditor on its own; kswapd and ksmd are the host machine's. Lock order: see
/// <see cref="HostOperationGate"/>.</remarks>
public sealed class StressDemo
{
    private const int MaxViolationsKept = 20;
    private const long SliceInstructions = 64 * 1024;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    private readonly StressDemoOptions _options;
    private IReadOnlyList<StressMechanism> _mechanisms = [];
    private StressGuestProgress? _progress;
    private StressAuditor? _auditor;
    private Vm? _vm;
    private string _stage = "starting";
    private long _stressStart;

    /// <summary>Creates the demo.</summary>
    /// <exception cref="StressDemoOptionsException">An option breaks its rule.</exception>
    public StressDemo(StressDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The options.</summary>
    public StressDemoOptions Options => _options;

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>The VM of the run in progress (for a live view), or null before and after it.</summary>
    public Vm? Vm => Volatile.Read(ref _vm);

    /// <summary>Each mechanism's figures now (for a live view; empty before the run starts them).</summary>
    public IReadOnlyList<StressMechanismResult> Mechanisms()
    {
        var elapsed = StressElapsed();
        return [.. Volatile.Read(ref _mechanisms).Select(m => m.Snapshot(elapsed))];
    }

    /// <summary>The guest's passes, pages verified, corrupted and discarded so far.</summary>
    public (long Passes, long Verified, long Corrupted, long Discarded) Guest() =>
        Volatile.Read(ref _progress) is { } p ? (p.Passes, p.PagesVerified, p.CorruptedPages, p.DiscardedPages) : default;

    /// <summary>Audit passes and violations so far.</summary>
    public (long Passes, long Violations) Audits() =>
        Volatile.Read(ref _auditor) is { } a ? (a.Passes, a.ViolationCount) : default;

    /// <summary>How long the mechanisms have run.</summary>
    public TimeSpan StressElapsed() => Interlocked.Read(ref _stressStart) is var s && s != 0 ? Stopwatch.GetElapsedTime(s) : TimeSpan.Zero;

    /// <summary>Runs the demo.</summary>
    /// <exception cref="FileNotFoundException">The stress guest image is missing.</exception>
    public StressDemoResult Run()
    {
        var start = Stopwatch.GetTimestamp();
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("stress", _options.GuestsFolder)));
        var region = _options.EffectiveRegionBytes;
        var c = CultureInfo.InvariantCulture;

        // The cgroup limit is below what the guest touches (its image and control area, about 4 MiB, and its regions) and
        // the DMA buffers' chunk, so kswapd and direct reclaim swap all along, the DMA buffers too.
        var dma = !_options.Without.Contains(StressMechanismKind.Dma);
        var touched = (4UL << 20) + (region * (ulong)_options.Vcpus) + (dma ? StressGuestLayout.ChunkBytes : 0);
        var limit = Math.Max(4UL << 20, (ulong)(touched * _options.HostMemoryShare) & ~(Paging.PageSize - 1));
        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            CpuCount = _options.Vcpus,
            NumaNodes = 2,
            TransparentHugePages = ThpMode.Madvise,
            HostMemoryBytes = limit,
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = Math.Max(SwapOptions.MinSizeBytes, _options.GuestBytes + (16UL << 20)) },
            Ksm = true,
            KsmPagesToScan = 1000,
            KsmSleepMilliseconds = 10,
            CommandLine = string.Create(c, $"mib={region >> 20} kinds=8 seed={_options.Seed}"),
            Trace = _options.Trace,
            DmaCache = dma ? Devices.Dma.DmaCacheMode.Safe : null,
        };

        var progress = new StressGuestProgress();
        Volatile.Write(ref _progress, progress);
        using var vm = new Vm(options, new GuestConsole(new ConsoleLineWatcher(progress.OnLine)));
        var loaded = vm.Boot(image);
        var layout = StressGuestLayout.For(loaded.EndGpa, _options.Vcpus, region) with { DmaChunks = dma ? 1 : 0 };
        if (layout.HostEndGpa > _options.GuestBytes)
        {
            throw new StressDemoOptionsException(nameof(StressDemoOptions.GuestBytes), string.Create(c, $"the guest's data area{(dma ? " and the DMA buffers" : string.Empty)} end at {layout.HostEndGpa >> 20} MiB, beyond guest RAM of {_options.GuestBytes >> 20} MiB: give more guest RAM"));
        }

        var cpus = vm.Emulated!.Cpus;
        var gates = cpus.Select(_ => new Lock()).ToArray();
        var memory = new StressGuestMemory(vm.Mmu!, vm.Process!, layout, gates, mergeable: true, hugePages: true);
        using var operationGate = new HostOperationGate();
        var context = new StressContext(vm, memory, operationGate);
        var storm = new MprotectStormMechanism(context);
        for (var i = 0; i < cpus.Count; i++)
        {
            var vcpu = cpus[i];
            var node = i % 2;
            vcpu.SliceGate = gates[i];
            vcpu.SliceInstructions = SliceInstructions;
            vcpu.MemoryFaultHandler = storm.Resolve;

            // Even vCPUs run on node 0, odd ones on node 1: their hinting faults pull pages both ways.
            vcpu.BetweenSlices = () => HostThread.CurrentNode = node;
        }

        var latency = new InvalidationLatencyNotifier();
        vm.Process!.Notifiers.Register(latency);
        StressMechanism[] mechanisms =
        [
            new ReclaimMechanism(context, "zram"),
            new KsmMechanism(context),
            new MigrationMechanism(context),
            new NumaBalancingMechanism(context),
            new ThpSplitMechanism(context),
            new ThpCollapseMechanism(context),
            new ForkMechanism(context),
            storm,
            new MemslotRemapMechanism(context),
            new DontNeedMechanism(context),
            new DmaMechanism(context),
        ];

        using var auditor = new StressAuditor(vm, operationGate, memory, _options.AuditInterval, MaxViolationsKept);
        using var stopMechanisms = new CancellationTokenSource();
        using var cancelVm = new CancellationTokenSource();
        VmRunResult? run = null;
        Exception? failure = null;
        var runner = new Thread(() =>
        {
            try
            {
                run = vm.Run(cancelVm.Token);
            }
            catch (Exception exception)
            {
                failure = exception;
            }
        })
        { IsBackground = true, Name = "stress-demo-vcpu0" };

        string? problem = null;
        var started = false;
        try
        {
            Volatile.Write(ref _vm, vm);
            _options.Trace?.NameCurrentThread("stress-demo");
            runner.Start();
            SetStage("the guest boots and starts its vCPUs");
            problem = WaitFor(vm, () => progress.DataGpa is not null, "printed its layout");
            if (problem is null && (progress.DataGpa != layout.DataGpa || progress.ControlGpa != layout.ControlGpa))
            {
                problem = string.Create(c, $"the guest put its control page at 0x{progress.ControlGpa:x} and its data at 0x{progress.DataGpa:x}, the demo expected 0x{layout.ControlGpa:x} and 0x{layout.DataGpa:x}");
            }

            if (problem is null)
            {
                Volatile.Write(ref _mechanisms, mechanisms);
                auditor.Start(_options.Trace);
                Volatile.Write(ref _auditor, auditor);
                var schedule = new StressSchedule(_options.Seed, layout);
                foreach (var mechanism in mechanisms.Where(m => StressSchedule.Scheduled.Contains(m.Kind) && !_options.Without.Contains(m.Kind)))
                {
                    mechanism.Start(schedule.For(mechanism.Kind), operationGate, stopMechanisms.Token, _options.Trace);
                }

                started = true;
                Interlocked.Exchange(ref _stressStart, Stopwatch.GetTimestamp());
                problem = Stress(vm, mechanisms, auditor);
            }
        }
        finally
        {
            stopMechanisms.Cancel();
            if (started)
            {
                foreach (var mechanism in mechanisms)
                {
                    mechanism.Join();
                }
            }

            auditor.Stop();
        }

        var stressElapsed = StressElapsed();
        Interlocked.Exchange(ref _stressStart, 0);
        problem ??= mechanisms.FirstOrDefault(m => m.Failure is not null) is { } failed ? $"{failed.Name} failed: {failed.Failure!.GetType().Name}: {failed.Failure.Message}" : null;
        problem ??= auditor.Failure is { } auditFailure ? $"the auditor failed: {auditFailure.GetType().Name}: {auditFailure.Message}" : null;

        // The guest finishes the pass it is in and exits; the demo's own store into its control page is a host access like any.
        SetStage("the guest finishes its passes and exits");
        if (vm.Progress().Kind == VmStopKind.Running)
        {
            operationGate.Shared(() => memory.WriteU64(layout.ControlGpa + StressGuestLayout.StopOffset, 1));
        }

        if (!runner.Join(_options.PhaseTimeout))
        {
            cancelVm.Cancel();
            runner.Join();
            problem ??= string.Create(c, $"the guest had not finished its last pass {_options.PhaseTimeout.TotalSeconds:0} s after it was told to stop");
        }

        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        SetStage("final audit");
        auditor.AuditNow("after the guest exited");
        var result = Result(vm, layout, mechanisms, progress, auditor, latency, run!, stressElapsed, problem, Stopwatch.GetElapsedTime(start));
        Volatile.Write(ref _vm, null);
        SetStage("done");
        return result;
    }

    /// <summary>The stress phase: waits out the duration, watching for a stopped VM or a failed thread; returns what went wrong, or null.</summary>
    private string? Stress(Vm vm, IReadOnlyList<StressMechanism> mechanisms, StressAuditor auditor)
    {
        var c = CultureInfo.InvariantCulture;
        while (StressElapsed() < _options.Duration)
        {
            SetStage(string.Create(c, $"every mechanism under the guest: {Math.Floor(StressElapsed().TotalSeconds / 5) * 5:0} of {_options.Duration.TotalSeconds:0} s, seed {_options.Seed}"));
            Thread.Sleep(PollInterval);
            if (vm.Progress() is { Kind: not VmStopKind.Running } stopped)
            {
                return $"the VM stopped during the stress phase: {stopped.Kind}: {stopped.Detail}";
            }

            if (mechanisms.FirstOrDefault(m => m.Failure is not null) is { } failed)
            {
                return $"{failed.Name} failed: {failed.Failure!.GetType().Name}: {failed.Failure.Message}";
            }

            if (auditor.Failure is { } auditFailure)
            {
                return $"the auditor failed: {auditFailure.GetType().Name}: {auditFailure.Message}";
            }

            if ((vm.ReclaimDaemon?.Failure ?? vm.Machine?.KsmDaemon?.Failure) is { } daemon)
            {
                return $"a host daemon failed: {daemon.GetType().Name}: {daemon.Message}";
            }
        }

        return null;
    }

    private StressDemoResult Result(
        Vm vm,
        StressGuestLayout layout,
        IReadOnlyList<StressMechanism> mechanisms,
        StressGuestProgress progress,
        StressAuditor auditor,
        InvalidationLatencyNotifier latency,
        VmRunResult run,
        TimeSpan stressElapsed,
        string? problem,
        TimeSpan elapsed)
    {
        var mmu = vm.Mmu!.Stats;
        var dma = mechanisms.OfType<DmaMechanism>().Single();
        var shootdown = vm.Shootdown!;
        var waits = shootdown.Waits;
        return new StressDemoResult
        {
            Options = _options,
            Layout = layout,
            Mechanisms = [.. mechanisms.Select(m => m.Snapshot(stressElapsed))],
            StressElapsed = stressElapsed,
            EptViolations = mmu.Faults,
            SptesZapped = mmu.Zapped,
            Invalidations = mmu.Invalidations,
            FaultRetries = mmu.Retries,
            InvalidationWaits = mmu.InvalidationWaits,
            InvalidationsTimed = latency.Count,
            MeanInvalidation = latency.Mean,
            WorstInvalidation = latency.Longest,
            Shootdowns = shootdown.Flushes,
            ShootdownWaits = waits,
            MeanShootdown = waits == 0 ? TimeSpan.Zero : shootdown.WaitTime / waits,
            WorstShootdown = shootdown.MaxWait,
            MemoryFaultExits = vm.Emulated!.Cpus.Sum(v => v.MemoryFaultsResolved),
            GuestPasses = progress.Passes,
            PagesVerified = progress.PagesVerified,
            CorruptedPages = progress.CorruptedPages,
            DiscardedPages = progress.DiscardedPages,
            CorruptionLines = progress.CorruptionLines,
            Dma = dma.Counters,
            DmaVerifiedPages = dma.VerifiedPages,
            DmaCorruptedPages = dma.CorruptedPages,
            DmaCorruptionLines = dma.CorruptionLines,
            GuestExitCode = run.Kind == VmStopKind.GuestExit ? run.GuestExitCode : null,
            Verdict = progress.Verdict ?? $"{run.Kind}: {run.Detail}",
            AuditPasses = auditor.Passes,
            AuditViolationCount = auditor.ViolationCount,
            AuditViolations = auditor.Violations,
            LongestAuditPause = auditor.LongestPause,
            Problem = problem,
            Elapsed = elapsed,
        };
    }

    private void SetStage(string stage) => Volatile.Write(ref _stage, stage);

    /// <summary>Waits until <paramref name="reached"/> (or the VM stopped, or the phase timeout); returns what went wrong, or null.</summary>
    private string? WaitFor(Vm vm, Func<bool> reached, string what) => GuestWait.Until(vm, reached, what, _options.PhaseTimeout, PollInterval);
}
