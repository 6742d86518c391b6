using System.Diagnostics;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Ksm;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>
/// <c>hv demo thp</c>: transparent huge pages under a running guest, in three runs of the ksm guest (it fills its pages,
/// verifies them <see cref="ThpDemoOptions.Passes"/> times, rewrites every <see cref="ThpDemoOptions.Every"/>-th page and
/// verifies them again).
/// <para>Runs 1 and 2 compare: THP off, then <see cref="ThpMode.Always"/> (guest RAM 2 MiB-aligned, host huge faults,
/// 2 MiB EPT leaves): EPT violations, EPT table pages, 2 MiB leaves, the interpreter's TLB misses and 2-D walks, guest
/// time.</para>
/// <para>Run 3, THP on: once the guest has verified its pages it is let go into its rewrite while the host mprotects one
/// 4 KiB page (read-write to read-write: no access changes) in every huge page of guest RAM, which splits each (the
/// split zaps the 2 MiB spte and the guest refaults at 4 KiB). Held after the rewrite, the host and MMU auditors run and
/// khugepaged is stepped until it collapses the ranges back (audited after every step); the guest then verifies every
/// page again, which refaults them as 2 MiB leaves. The host reads every page back after the guest exits.</para>
/// </summary>
/// <remarks>Threads: the demo's thread splits, collapses and audits; the vCPU of run 3 runs on a thread of its own (its
/// console callbacks run there). Lock order: the vCPU's slice gate is taken by the demo only for an audit, never around
/// an mprotect or a khugepaged step.</remarks>
public sealed partial class ThpDemo
{
    private const int MaxViolationsKept = 20;
    private const long SliceInstructions = 64 * 1024;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);

    private readonly ThpDemoOptions _options;
    private readonly List<string> _violations = [];
    private Vm? _vm;
    private string _stage = "starting";
    private long _audits;

    /// <summary>Creates the demo.</summary>
    /// <exception cref="ThpDemoOptionsException">An option breaks its rule.</exception>
    public ThpDemo(ThpDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The VM of the run in progress (for a live view), or null between runs.</summary>
    public Vm? Vm => Volatile.Read(ref _vm);

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>Audits run so far.</summary>
    public long Audits => Interlocked.Read(ref _audits);

    /// <summary>Runs the demo.</summary>
    /// <exception cref="FileNotFoundException">The ksm guest image is missing.</exception>
    public ThpDemoResult Run()
    {
        var start = Stopwatch.GetTimestamp();
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("ksm", _options.GuestsFolder)));
        SetStage("run 1 of 3: the guest with THP off");
        var off = Compare(image, ThpMode.Never);
        SetStage("run 2 of 3: the guest with --thp always");
        var on = Compare(image, ThpMode.Always);
        var (storm, stormRun, guest, checkedPages, corrupted, problem) = StormRun(image);
        SetStage("done");
        return new ThpDemoResult
        {
            Options = _options,
            Off = off,
            On = on,
            Storm = storm,
            StormRun = stormRun,
            HostCheckedPages = checkedPages,
            HostCorruptedPages = corrupted,
            GuestPages = guest,
            Audits = Audits,
            AuditViolations = [.. _violations],
            Problem = problem,
            Elapsed = Stopwatch.GetElapsedTime(start),
        };
    }

    private VmOptions OptionsFor(ThpMode mode) => new()
    {
        MemoryBytes = _options.GuestBytes,
        TransparentHugePages = mode,
        Timeout = _options.PhaseTimeout,
        Trace = _options.Trace,
        CommandLine = string.Create(CultureInfo.InvariantCulture, $"pages={_options.Pages} kinds={_options.Kinds} every={_options.Every} passes={_options.Passes}"),
    };

    /// <summary>One comparison run: the guest alone, start to exit.</summary>
    private ThpDemoRun Compare(ElfImage image, ThpMode mode)
    {
        var guest = new GuestState(hold: false);
        using var vm = new Vm(OptionsFor(mode), new GuestConsole(new ConsoleLineWatcher(guest.OnLine)));
        vm.Boot(image);
        Volatile.Write(ref _vm, vm);
        using var sampler = TraceSampler.Start(_options.Trace, vm);
        try
        {
            var result = vm.Run();
            return Figures(vm, result, mode, guest.Verdict);
        }
        finally
        {
            Volatile.Write(ref _vm, null);
        }
    }

    private static ThpDemoRun Figures(Vm vm, VmRunResult result, ThpMode mode, string? verdict) => new()
    {
        Mode = mode,
        EptViolations = result.Mmu.Faults,
        EptTablePages = result.Mmu.TablePages,
        Pages2M = result.Mmu.Pages2M,
        Pages4K = result.Mmu.Pages4K,
        TlbMisses = result.Tlb.Misses,
        Walks = result.Walker.Walks,
        Instructions = result.Cpu.Instructions,
        ThpFaultAlloc = vm.Process!.ThpStats.ThpFaultAlloc,
        GuestTime = result.Elapsed,
        GuestExitCode = result.GuestExitCode,
        Verdict = verdict ?? result.Detail,
    };

    /// <summary>Run 3: the split storm under the running guest, then the collapse pass.</summary>
    private (ThpDemoStorm? Storm, ThpDemoRun? Run, long GuestPages, long Checked, long Corrupted, string? Problem) StormRun(ElfImage image)
    {
        SetStage("run 3 of 3: THP on, the guest fills and verifies its pages");
        var guest = new GuestState(hold: true);
        var gate = new Lock();
        using var vm = new Vm(OptionsFor(ThpMode.Always), new GuestConsole(new ConsoleLineWatcher(guest.OnLine)));
        vm.Boot(image);
        using var sampler = TraceSampler.Start(_options.Trace, vm);
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = SliceInstructions;
        vcpu.SliceGate = gate;
        var ram = vm.GuestMemory!;

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
        { IsBackground = true, Name = "thp-demo-vcpu0" };

        ThpDemoStorm? storm = null;
        string? problem = null;
        try
        {
            Volatile.Write(ref _vm, vm);
            runner.Start();
            problem = WaitFor(vm, () => guest.Hold.HeldAt is not null && guest.Phase1, "verified its pages (phase 1)");
            if (problem is null)
            {
                storm = SplitAndCollapse(vm, guest, gate, out problem);
            }

            SetStage("run 3 of 3: the guest verifies its pages and exits");
            guest.Hold.Abandon();
            if (!runner.Join(_options.PhaseTimeout))
            {
                cancel.Cancel();
                runner.Join();
                problem ??= string.Create(CultureInfo.InvariantCulture, $"the guest had not finished {_options.PhaseTimeout.TotalSeconds:0} s after the collapse pass");
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            AuditQuiescent(vm, guest, gate, "after the guest exited");
            if (storm is not null)
            {
                storm = storm with { Pages2MAtEnd = vm.Mmu!.Stats.Pages2M, RefaultsAfterCollapse = vm.Mmu.Stats.Faults - storm.RefaultsAfterCollapse };
            }

            SetStage("run 3 of 3: the host reads every page back");
            var (checkedPages, corrupted) = guest.Base is { } guestBase && run!.Kind == VmStopKind.GuestExit
                ? KsmGuestPages.ReadBack(ram, guestBase, guest.Pages, _options.Every, _options.Kinds)
                : (0L, 0L);
            return (storm, Figures(vm, run!, ThpMode.Always, guest.Verdict), guest.Pages, checkedPages, corrupted, problem);
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

    /// <summary>Entered with the guest held after phase 1; leaves it held after its rewrite, the ranges collapsed.</summary>
    private ThpDemoStorm? SplitAndCollapse(Vm vm, GuestState guest, Lock gate, out string? problem)
    {
        var ram = vm.GuestMemory!;
        var process = vm.Process!;
        var mmu = vm.Mmu!;
        AuditQuiescent(vm, guest, gate, "phase 1 verified, before the storm");
        var before = mmu.Stats;
        var hugeBefore = process.ThpStats;

        // The storm runs as the guest rewrites: one 4 KiB page per huge page of guest RAM is mprotected read-write to
        // read-write, so no access the guest makes can fail, yet every huge leaf it covers is split (and its spte zapped).
        SetStage("run 3 of 3: split storm: one 4 KiB mprotect in every huge page, the guest rewriting under it");
        guest.Hold.Release();
        var clock = Stopwatch.GetTimestamp();
        long mprotects = 0;
        var huge = Paging.LargePageSize;
        for (var offset = 0UL; offset + huge <= ram.Size; offset += huge)
        {
            var range = ram.Base + offset;
            if (process.PageTable.IsHugeMapped(range))
            {
                process.Mprotect(range + (huge - Paging.PageSize), Paging.PageSize, Protection.Read | Protection.Write);
                mprotects++;
            }
        }

        var stormElapsed = Stopwatch.GetElapsedTime(clock);
        var afterStorm = mmu.Stats;
        var split = process.ThpStats;
        problem = WaitFor(vm, () => guest.Hold.HeldAt is not null && guest.Rewritten >= 0, "rewrote its pages");
        if (problem is not null)
        {
            return null;
        }

        AuditQuiescent(vm, guest, gate, "after the split storm");
        var refaulted = mmu.Stats;

        // Collapse with the guest held: khugepaged asks the EPT (test_young) whether the 4 KiB sptes were used.
        SetStage("run 3 of 3: collapse pass: khugepaged steps until the ranges are huge again");
        var khugepaged = vm.Host!.Khugepaged;
        var collapsedBefore = khugepaged.Stats.PagesCollapsed;
        clock = Stopwatch.GetTimestamp();
        long steps = 0;
        long progressAtScan = 0;
        var scansBefore = khugepaged.Stats.FullScans;
        while (steps < ThpDemoOptions.MaxCollapseSteps)
        {
            var collapsed = khugepaged.Step(_options.CollapseBudget);
            steps++;
            AuditQuiescent(vm, guest, gate, string.Create(CultureInfo.InvariantCulture, $"after khugepaged step {steps}"));
            if (khugepaged.Stats.PagesCollapsed - collapsedBefore >= split.ThpSplitPmd - hugeBefore.ThpSplitPmd)
            {
                break;
            }

            // Two full scans since the last collapse: what is left does not qualify.
            var scans = khugepaged.Stats.FullScans - scansBefore;
            if (collapsed > 0)
            {
                progressAtScan = scans;
            }
            else if (scans - progressAtScan >= 2)
            {
                break;
            }
        }

        var collapseElapsed = Stopwatch.GetElapsedTime(clock);
        var afterCollapse = mmu.Stats;
        problem = null;
        return new ThpDemoStorm
        {
            Pages2MBefore = before.Pages2M,
            HugeLeavesBefore = hugeBefore.HugeLeaves,
            Mprotects = mprotects,
            Splits = split.ThpSplitPmd - hugeBefore.ThpSplitPmd,
            SptesZapped = afterStorm.Zapped - before.Zapped,
            StormElapsed = stormElapsed,
            Pages2MAfterStorm = refaulted.Pages2M,
            Pages4KAfterStorm = refaulted.Pages4K,
            // From the storm's start: the guest runs during the storm and may refault every split range before it ends.
            RefaultsAfterStorm = refaulted.Faults - before.Faults,
            CollapseSteps = steps,
            Collapsed = khugepaged.Stats.PagesCollapsed - collapsedBefore,
            HugeLeavesAfterCollapse = process.ThpStats.HugeLeaves,
            CollapseElapsed = collapseElapsed,
            Pages2MAtEnd = 0,

            // Holds the fault count at the collapse's end until the run ends; the caller turns it into a difference.
            RefaultsAfterCollapse = afterCollapse.Faults,
        };
    }

    private void SetStage(string stage) => Volatile.Write(ref _stage, stage);

    /// <summary>Waits until <paramref name="reached"/> (or the VM stopped, or the phase timeout); returns what went wrong, or null.</summary>
    private string? WaitFor(Vm vm, Func<bool> reached, string what) => GuestWait.Until(vm, reached, what, _options.PhaseTimeout, PollInterval);

    /// <summary>
    /// Audits where the vCPU has no memory access in flight: held at a console line (a port write), stopped, or between
    /// two slices (its gate taken here). A vCPU held at a console line keeps the gate of its slice, so the gate is only
    /// tried, never waited on.
    /// </summary>
    private void AuditQuiescent(Vm vm, GuestState guest, Lock gate, string when)
    {
        while (true)
        {
            if (guest.Hold.HeldAt is not null || vm.Progress().Kind != VmStopKind.Running)
            {
                Audit(vm, when);
                return;
            }

            if (gate.TryEnter(PollInterval))
            {
                try
                {
                    Audit(vm, when);
                    return;
                }
                finally
                {
                    gate.Exit();
                }
            }
        }
    }

    private void Audit(Vm vm, string when)
    {
        if (!_options.AuditEveryStep)
        {
            return;
        }

        Interlocked.Increment(ref _audits);
        Record(when, "host", HostMmAuditor.Check(vm.Host!));
        Record(when, "MMU", MmuAuditor.Check(vm.Mmu!));
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

    /// <summary>The guest as its console shows it; fields written on its vCPU's thread, read by the demo.</summary>
    private sealed class GuestState(bool hold)
    {
        private volatile string? _verdict;
        private long _base = -1;
        private long _rewritten = -1;
        private volatile bool _phase1;

        public VmHold Hold { get; } = new();

        public ulong? Base => Interlocked.Read(ref _base) is var value && value >= 0 ? (ulong)value : null;

        public long Pages { get; private set; }

        public bool Phase1 => _phase1;

        public long Rewritten => Interlocked.Read(ref _rewritten);

        public string? Verdict => _verdict;

        public void OnLine(string line)
        {
            if (KsmGuestPages.PagesAt().Match(line) is { Success: true } at)
            {
                Pages = long.Parse(at.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
                Interlocked.Exchange(ref _base, (long)ulong.Parse(at.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
            else if (line.StartsWith("ksm: phase 1:", StringComparison.Ordinal))
            {
                _phase1 = true;
                Arrive(line);
            }
            else if (KsmGuestPages.RewroteLine().Match(line) is { Success: true } rewrote)
            {
                Interlocked.Exchange(ref _rewritten, long.Parse(rewrote.Groups[1].ValueSpan, CultureInfo.InvariantCulture));
                Arrive(line);
            }
            else if (line.StartsWith("ksm: OK", StringComparison.Ordinal) || line.StartsWith("ksm: FAIL", StringComparison.Ordinal))
            {
                _verdict = line;
            }
        }

        private void Arrive(string line)
        {
            if (hold)
            {
                Hold.Arrive(line);
            }
        }
    }
}
