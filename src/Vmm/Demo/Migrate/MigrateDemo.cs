using System.Diagnostics;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Migration;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Ksm;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>
/// <c>hv demo migrate</c>: page migration between NUMA nodes under a running guest, in two phases, on a two-node host
/// where each node holds all guest RAM.
/// <para>Phase 1: the ksm guest fills its pages and re-reads and checks them <see cref="MigrateDemoOptions.Passes"/>
/// times while the host migrates all of guest RAM node 0 → 1 → 0 … (<see cref="MigrateDemoOptions.Trips"/> trips, each one
/// <c>MigrateRange</c> over the memslot). Every migrated page's spte is zapped by the migration's notifier call and the
/// guest refaults to the new frame; a refault that meets a migration entry waits in get-user-pages. The host MM auditor
/// and the MMU auditor run after every trip at a quiescent point: between two interpreter slices (the vCPU's slice
/// gate), or while the guest is held at a console line.</para>
/// <para>Phase 2: with the guest held after its rewrite, guest RAM is bound to node 0 (mbind with move), the policy set
/// back to local, the vCPU's home node set to 1 and NUMA balancing enabled; the guest runs its second verify phase while
/// the balancer is stepped (audited after every step) until most pages are on node 1. The guest then checks every page
/// and exits; the host reads every page back and compares it with the guest's last writes.</para>
/// </summary>
/// <remarks>Threads: the demo's thread migrates, steps the balancer and audits; the VM's vCPU runs on a thread of its own
/// (its console callbacks and between-slice hook run there). Lock order: the vCPU's slice gate is taken by the demo only
/// for an audit, never around a migration or a balancing step (the vCPU may wait on a migration entry inside a slice).</remarks>
public sealed partial class MigrateDemo
{
    private const int MaxViolationsKept = 20;
    private const long SliceInstructions = 64 * 1024;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan TripGap = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan StepInterval = TimeSpan.FromMilliseconds(10);

    private readonly MigrateDemoOptions _options;
    private readonly List<string> _violations = [];
    private readonly List<MigrateTrip> _trips = [];
    private Vm? _vm;
    private string _stage = "starting";
    private long _audits;
    private int _tripsDone;

    /// <summary>Creates the demo.</summary>
    /// <exception cref="MigrateDemoOptionsException">An option breaks its rule.</exception>
    public MigrateDemo(MigrateDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The VM of the run in progress (for a live view), or null before and after it.</summary>
    public Vm? Vm => Volatile.Read(ref _vm);

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>Audits run so far.</summary>
    public long Audits => Interlocked.Read(ref _audits);

    /// <summary>Trips completed so far.</summary>
    public int TripsDone => Volatile.Read(ref _tripsDone);

    /// <summary>Runs the demo.</summary>
    /// <exception cref="FileNotFoundException">The ksm guest image is missing.</exception>
    public MigrateDemoResult Run()
    {
        var start = Stopwatch.GetTimestamp();
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("ksm", _options.GuestsFolder)));
        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            NumaNodes = 2,
            VcpuNode = 0,
            CommandLine = string.Create(CultureInfo.InvariantCulture, $"pages={_options.Pages} kinds={_options.Kinds} every={_options.Every} passes={_options.Passes}"),
            Trace = _options.Trace,
        };

        var guest = new GuestState();
        var gate = new Lock();
        using var vm = new Vm(options, new GuestConsole(new ConsoleLineWatcher(guest.OnLine)));
        vm.Boot(image);
        using var sampler = TraceSampler.Start(_options.Trace, vm);
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = SliceInstructions;
        vcpu.SliceGate = gate;
        var ram = vm.GuestMemory!;
        var host = vm.Host!;

        VmRunResult? run = null;
        Exception? failure = null;
        using var cancel = new CancellationTokenSource();
        var runner = new Thread(() =>
        {
            try
            {
                run = vm.Run(cancel.Token);
            }
            catch (Exception exception)
            {
                failure = exception;
            }
        })
        { IsBackground = true, Name = "migrate-demo-vcpu0" };

        MigrateDemoBalancing? balancing = null;
        string? problem = null;
        try
        {
            Volatile.Write(ref _vm, vm);
            runner.Start();
            // The trips begin once the guest has filled its pages (each trip then moves all of them), while it checks them.
            SetStage("the guest fills its pages");
            problem = WaitFor(vm, () => guest.Hold.HeldAt is not null || (guest.Base is not null && ResidentPages(ram) >= guest.Pages), "filled its pages");
            problem ??= RunTrips(vm, guest, gate);

            if (problem is null)
            {
                SetStage("the guest finishes its first verify phase");
                problem = WaitFor(vm, () => guest.Hold.HeldAt is not null && guest.Phase1, "verified its pages (phase 1)");
            }

            if (problem is null)
            {
                AuditQuiescent(vm, guest, gate, "phase 1 verified");
                guest.Hold.Release();
                SetStage("the guest rewrites 1 page in " + _options.Every.ToString(CultureInfo.InvariantCulture));
                problem = WaitFor(vm, () => guest.Hold.HeldAt is not null && guest.Rewritten >= 0, "rewrote its pages");
            }

            if (problem is null)
            {
                (balancing, problem) = Balance(vm, guest, gate);
            }

            SetStage("the guest verifies its pages and exits");
            guest.Hold.Abandon();
            if (!runner.Join(_options.PhaseTimeout))
            {
                cancel.Cancel();
                runner.Join();
                problem ??= string.Create(CultureInfo.InvariantCulture, $"the guest had not finished {_options.PhaseTimeout.TotalSeconds:0} s after phase 2 began");
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            SetStage("the host reads every page back");
            AuditQuiescent(vm, guest, gate, "after the guest exited");
            var (checkedPages, corrupted) = guest.Base is { } guestBase && run!.Kind == VmStopKind.GuestExit
                ? KsmGuestPages.ReadBack(ram, guestBase, guest.Pages, _options.Every, _options.Kinds)
                : (0L, 0L);

            SetStage("done");
            return new MigrateDemoResult
            {
                Options = _options,
                Trips = [.. _trips],
                Balancing = balancing,
                Migration = host.Migration.Stats,
                GuestExitCode = run!.GuestExitCode,
                Verdict = guest.Verdict ?? run.Detail,
                GuestPages = guest.Pages,
                HostCheckedPages = checkedPages,
                HostCorruptedPages = corrupted,
                Audits = Audits,
                AuditViolations = [.. _violations],
                Problem = problem,
                Elapsed = Stopwatch.GetElapsedTime(start),
            };
        }
        finally
        {
            guest.Hold.Abandon();
            if (runner.IsAlive)
            {
                cancel.Cancel();
                runner.Join();
            }

            Volatile.Write(ref _vm, null);
        }
    }

    /// <summary>Phase 1: the trips, each audited; returns what went wrong, or null.</summary>
    private string? RunTrips(Vm vm, GuestState guest, Lock gate)
    {
        var ram = vm.GuestMemory!;
        var process = vm.Process!;
        var migrator = vm.Host!.Migration;
        var start = ram.Base;
        var end = ram.Base + ram.Size;
        Counters? previous = null;
        int previousNode = 0;
        MigrationSummary previousSummary = default;
        TimeSpan previousElapsed = default;
        bool previousRunning = false;
        IReadOnlyList<long> previousPages = [];
        for (var trip = 1; trip <= _options.Trips; trip++)
        {
            var target = trip % 2;
            var now = Counters.Of(vm);
            if (previous is { } before)
            {
                _trips.Add(Trip(trip - 1, previousNode, previousSummary, previousElapsed, previousRunning, previousPages, before, now));
            }

            SetStage(string.Create(CultureInfo.InvariantCulture, $"trip {trip} of {_options.Trips}: all guest RAM to node {target} under the running guest"));
            var runningBefore = IsRunning(vm, guest);
            var clock = Stopwatch.GetTimestamp();
            var summary = migrator.MigrateRange(process, start, end, target);
            var elapsed = Stopwatch.GetElapsedTime(clock);
            var running = runningBefore && IsRunning(vm, guest);
            var pages = AuditQuiescent(vm, guest, gate, string.Create(CultureInfo.InvariantCulture, $"after trip {trip}"));
            Interlocked.Increment(ref _tripsDone);
            (previous, previousNode, previousSummary, previousElapsed, previousRunning, previousPages) = (now, target, summary, elapsed, running, pages);
            if (vm.Progress().Kind != VmStopKind.Running && guest.Verdict is null)
            {
                return $"the VM stopped during trip {trip}: {vm.Progress().Detail}";
            }

            Thread.Sleep(TripGap);
        }

        _trips.Add(Trip(_options.Trips, previousNode, previousSummary, previousElapsed, previousRunning, previousPages, previous!.Value, Counters.Of(vm)));
        return null;
    }

    private static MigrateTrip Trip(int number, int node, MigrationSummary summary, TimeSpan elapsed, bool running, IReadOnlyList<long> pages, Counters before, Counters after) => new()
    {
        Number = number,
        TargetNode = node,
        Summary = summary,
        Elapsed = elapsed,
        GuestRunning = running,
        PagesPerNodeAfter = pages,
        MigrationEntryWaits = after.Waits - before.Waits,
        EptMigrationEntryWaits = after.GupWaits - before.GupWaits,
        SptesZapped = after.Zapped - before.Zapped,
        EptViolations = after.Faults - before.Faults,
    };

    /// <summary>Phase 2, entered with the guest held after its rewrite; returns the phase's figures and what went wrong, or null.</summary>
    private (MigrateDemoBalancing? Balancing, string? Problem) Balance(Vm vm, GuestState guest, Lock gate)
    {
        var ram = vm.GuestMemory!;
        var process = vm.Process!;
        var balancer = vm.Host!.NumaBalancing;
        SetStage("guest RAM bound to node 0 and moved there (mbind MPOL_BIND, MPOL_MF_MOVE)");
        var atStart = ram.ResidentPagesPerNode();
        var bindMove = process.Mbind(ram.Base, ram.Size, NumaPolicy.Bind(0), move: true);
        process.Mbind(ram.Base, ram.Size, NumaPolicy.Local);
        var before = AuditQuiescent(vm, guest, gate, "after the bind to node 0");

        // The pages the guest keeps checking: the ones its vCPU's hinting faults can pull over (its image, stack and
        // tables, touched rarely, may stay where they are).
        var dataStart = ram.Base + guest.Base!.Value;
        var dataEnd = dataStart + ((ulong)guest.Pages * Paging.PageSize);
        var dataBefore = process.ResidentPagesPerNode(dataStart, dataEnd);
        var dataAfter = dataBefore;
        var counters = Counters.Of(vm);
        var stats = balancer.Stats;
        guest.NextNode = 1;
        balancer.Enabled = true;
        SetStage("the vCPU's home node is 1: NUMA balancing moves the pages it touches");
        var budget = _options.BalanceBudget > 0 ? _options.BalanceBudget : (long)(ram.Size / Paging.PageSize);

        // The phase's first scan runs as the guest is let go (as task_numa_work runs when a task starts on a node), so
        // its next pass over its pages meets the hinting faults whatever its speed; later scans run under it.
        var clock = Stopwatch.GetTimestamp();
        balancer.Step(budget);
        long steps = 1;
        var after = AuditQuiescent(vm, guest, gate, "after balancing step 1");
        guest.Hold.Release();

        var deadline = clock + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
        var balanced = false;
        string? problem = null;
        try
        {
            while (true)
            {
                Thread.Sleep(StepInterval);
                balancer.Step(budget);
                steps++;
                after = AuditQuiescent(vm, guest, gate, string.Create(CultureInfo.InvariantCulture, $"after balancing step {steps}"));
                dataAfter = process.ResidentPagesPerNode(dataStart, dataEnd);
                var resident = dataAfter.Sum();
                if (resident > 0 && dataAfter[1] >= MigrateDemoOptions.BalancedShare * resident)
                {
                    balanced = true;
                    break;
                }

                if (vm.Progress().Kind != VmStopKind.Running || guest.Verdict is not null)
                {
                    problem = string.Create(CultureInfo.InvariantCulture, $"the guest finished before NUMA balancing moved most of its pages to node 1 ({dataAfter[1]:N0} of {resident:N0} after {steps} steps): give it more passes");
                    break;
                }

                if (Stopwatch.GetTimestamp() > deadline)
                {
                    problem = string.Create(CultureInfo.InvariantCulture, $"NUMA balancing had moved {dataAfter[1]:N0} of {resident:N0} of the guest's pages to node 1 after {_options.PhaseTimeout.TotalSeconds:0} s");
                    break;
                }
            }
        }
        finally
        {
            balancer.Enabled = false;
        }

        var end = Counters.Of(vm);
        var stepped = balancer.Stats;
        return (new MigrateDemoBalancing
        {
            PagesPerNodeAtStart = atStart,
            BindMove = bindMove,
            PagesPerNodeBefore = before,
            PagesPerNodeAfter = after,
            DataPagesPerNodeBefore = dataBefore,
            DataPagesPerNodeAfter = dataAfter,
            Stats = new NumaBalancingStats
            {
                NumaPteUpdates = stepped.NumaPteUpdates - stats.NumaPteUpdates,
                NumaHintFaults = stepped.NumaHintFaults - stats.NumaHintFaults,
                NumaHintFaultsLocal = stepped.NumaHintFaultsLocal - stats.NumaHintFaultsLocal,
                NumaPagesMigrated = stepped.NumaPagesMigrated - stats.NumaPagesMigrated,
                NumaMigrateFailed = stepped.NumaMigrateFailed - stats.NumaMigrateFailed,
                FullScans = stepped.FullScans - stats.FullScans,
            },
            Steps = steps,
            SptesZapped = end.Zapped - counters.Zapped,
            EptViolations = end.Faults - counters.Faults,
            MigrationEntryWaits = end.Waits - counters.Waits,
            EptMigrationEntryWaits = end.GupWaits - counters.GupWaits,
            Balanced = balanced,
            Elapsed = Stopwatch.GetElapsedTime(clock),
        }, problem);
    }

    private static long ResidentPages(GuestRam ram) => ram.ResidentPagesPerNode().Sum();

    private void SetStage(string stage) => Volatile.Write(ref _stage, stage);

    private static bool IsRunning(Vm vm, GuestState guest) => guest.Hold.HeldAt is null && vm.Progress().Kind == VmStopKind.Running;

    /// <summary>Waits until <paramref name="reached"/> (or the VM stopped, or the phase timeout); returns what went wrong, or null.</summary>
    private string? WaitFor(Vm vm, Func<bool> reached, string what) => GuestWait.Until(vm, reached, what, _options.PhaseTimeout, PollInterval);

    /// <summary>
    /// Audits at a point where the vCPU has no memory access in flight — it is held at a console line (a port write),
    /// has stopped, or is between two slices (its gate taken here) — and returns guest RAM's pages per node read there.
    /// A vCPU held at a console line keeps the gate it took for its slice, so the gate is only tried, never waited on.
    /// </summary>
    private long[] AuditQuiescent(Vm vm, GuestState guest, Lock gate, string when) =>
        AuditQuiescent(vm, () => guest.Hold.HeldAt is not null, gate, when);

    /// <summary>The same, for a guest that <paramref name="held"/> says whether it is held (never, for one that is not watched).</summary>
    private long[] AuditQuiescent(Vm vm, Func<bool> held, Lock gate, string when)
    {
        while (true)
        {
            if (held() || vm.Progress().Kind != VmStopKind.Running)
            {
                return Audit(vm, when);
            }

            if (gate.TryEnter(PollInterval))
            {
                try
                {
                    return Audit(vm, when);
                }
                finally
                {
                    gate.Exit();
                }
            }
        }
    }

    private long[] Audit(Vm vm, string when)
    {
        var pages = vm.GuestMemory!.ResidentPagesPerNode();
        if (!_options.AuditEveryStep)
        {
            return pages;
        }

        Interlocked.Increment(ref _audits);
        Record(when, "host", HostMmAuditor.Check(vm.Host!));
        Record(when, "MMU", MmuAuditor.Check(vm.Mmu!));
        return pages;
    }

    private void Record(string when, string what, IReadOnlyList<string> found)
    {
        foreach (var violation in found)
        {
            if (_violations.Count < MaxViolationsKept)
            {
                _violations.Add($"{when}, {what}: {violation}");
            }
        }
    }

    /// <summary>The counters a trip or a phase reports as differences.</summary>
    private readonly record struct Counters(long Waits, long GupWaits, long Zapped, long Faults)
    {
        public static Counters Of(Vm vm)
        {
            var mmu = vm.Mmu!.Stats;
            return new Counters(vm.Process!.MigrationEntryWaits, vm.Process.GupMigrationEntryWaits, mmu.Zapped, mmu.Faults);
        }
    }

    /// <summary>The guest as its console shows it; fields written on its vCPU's thread, read by the demo.</summary>
    private sealed class GuestState
    {
        private volatile string? _verdict;
        private long _base = -1;
        private int _nextNode = -1;

        public VmHold Hold { get; } = new();

        public ulong? Base => Interlocked.Read(ref _base) is var value && value >= 0 ? (ulong)value : null;

        public long Pages { get; private set; }

        public bool Phase1 { get; private set; }

        public long Rewritten { get; private set; } = -1;

        public string? Verdict => _verdict;

        /// <summary>The node the vCPU's thread moves to when the hold it is at is released (-1: stay).</summary>
        public int NextNode
        {
            get => Volatile.Read(ref _nextNode);
            set => Volatile.Write(ref _nextNode, value);
        }

        public void OnLine(string line)
        {
            if (KsmGuestPages.PagesAt().Match(line) is { Success: true } at)
            {
                Pages = long.Parse(at.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
                Interlocked.Exchange(ref _base, (long)ulong.Parse(at.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
            else if (line.StartsWith("ksm: phase 1:", StringComparison.Ordinal))
            {
                Phase1 = true;
                Hold.Arrive(line);
            }
            else if (KsmGuestPages.RewroteLine().Match(line) is { Success: true } rewrote)
            {
                Rewritten = long.Parse(rewrote.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
                Hold.Arrive(line);

                // Released: from here the vCPU runs on its new home node (this is its thread).
                if (NextNode >= 0)
                {
                    HostThread.CurrentNode = NextNode;
                }
            }
            else if (line.StartsWith("ksm: OK", StringComparison.Ordinal) || line.StartsWith("ksm: FAIL", StringComparison.Ordinal))
            {
                _verdict = line;
            }
        }
    }
}
