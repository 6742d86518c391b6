using System.Diagnostics;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Ksm;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>
/// <c>hv demo ksm</c>: KSM under running guests. <see cref="KsmDemoOptions.Vms"/> VMs on one host boot the ksm guest
/// with the same data; each is held once its pages are filled and checked, the host's ksmd merges until a full scan
/// merges nothing new (the host MM auditor and every VM's MMU auditor run after every ksmd batch, with every guest
/// held), and the memory saved is measured. Then the guests rewrite every <see cref="KsmDemoOptions.Every"/>-th page
/// with a content mixed with their own salt (breaking those merged pages copy-on-write) and are held again, and the host
/// reads every VM's pages back: each must hold its own content, never another VM's (the isolation check). The guests
/// then verify their pages themselves and exit. With <see cref="KsmDemoOptions.LegacyChangePte"/> the EPT MMU counts how
/// often the historical change_pte found an spte to retarget.
/// </summary>
public sealed partial class KsmDemo
{
    private const int MaxViolationsKept = 20;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    private readonly KsmDemoOptions _options;
    private readonly Lock _auditLock = new();
    private readonly List<string> _violations = [];
    private HostMachine? _machine;
    private IReadOnlyList<Vm> _vms = [];
    private string _stage = "starting";
    private long _audits;

    /// <summary>Creates the demo.</summary>
    /// <exception cref="KsmDemoOptionsException">An option breaks its rule.</exception>
    public KsmDemo(KsmDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The host of the run in progress (for a live view), or null before and after it.</summary>
    public HostMachine? Machine => Volatile.Read(ref _machine);

    /// <summary>The VMs of the run in progress (for a live view).</summary>
    public IReadOnlyList<Vm> Vms => Volatile.Read(ref _vms);

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>Audits run so far.</summary>
    public long Audits => Interlocked.Read(ref _audits);

    /// <summary>Runs the demo.</summary>
    /// <exception cref="FileNotFoundException">The ksm guest image is missing.</exception>
    public KsmDemoResult Run()
    {
        var start = Stopwatch.GetTimestamp();
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("ksm", _options.GuestsFolder)));
        var n = _options.Vms;
        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            Ksm = true,
            KsmPagesToScan = _options.PagesToScan,
            KsmSleepMilliseconds = _options.SleepMilliseconds,
            LegacyChangePte = _options.LegacyChangePte,
            Trace = _options.Trace,
        };

        using var machine = new HostMachine(options, n);
        machine.KsmRunAtStart = KsmRunMode.Stop;
        if (_options.AuditEveryStep)
        {
            // ksmd's thread, after each batch, with ksmd paused; every guest is held while merging runs, so nothing is in flight.
            machine.KsmStepped = Audit;
        }

        var guests = Enumerable.Range(0, n).Select(i => new GuestState(i + 1)).ToArray();
        var vms = new List<Vm>(n);
        VmRunResult[]? results = null;
        Exception? failure = null;
        Thread? runner = null;
        Hypervisor.Vmm.Tracing.TraceSampler? sampler = null;
        try
        {
            for (var i = 0; i < n; i++)
            {
                var guest = guests[i];
                var console = new GuestConsole(new ConsoleLineWatcher(guest.OnLine));
                vms.Add(new Vm(options with { CommandLine = CommandLineOf(guest.Salt) }, console, machine));
                vms[i].Boot(image);
            }

            Volatile.Write(ref _vms, vms);
            Volatile.Write(ref _machine, machine);
            _options.Trace?.NameCurrentThread("ksm-demo");
            sampler = _options.Trace is { } trace ? new Hypervisor.Vmm.Tracing.TraceSampler(trace, vms) : null;
            runner = new Thread(() =>
            {
                try
                {
                    results = [.. machine.Run(vms)];
                }
                catch (Exception exception)
                {
                    failure = exception;
                }
            })
            { IsBackground = true, Name = "ksm-demo-vms" };
            runner.Start();

            SetStage($"{n} guests fill {_options.Pages} pages each with {_options.Kinds} contents");
            var problem = WaitForAll(vms, guests, g => g.Phase1, "filled its pages");
            var before = Snapshot(machine, vms);
            AuditPaused(machine, settled: false);

            var settled = false;
            KsmDemoSnapshot afterMerge = before, afterRewrite = before;
            if (problem is null)
            {
                SetStage("ksmd merges the held guests' pages (audited after every batch)");
                settled = Merge(machine);
                SetRun(machine, KsmRunMode.Stop);
                AuditPaused(machine, settled);
                afterMerge = Snapshot(machine, vms);

                SetStage($"the guests rewrite 1 page in {_options.Every} with their own content (copy-on-write breaks)");
                foreach (var guest in guests)
                {
                    guest.Hold.Release();
                }

                problem = WaitForAll(vms, guests, g => g.Rewritten >= 0, "rewrote its pages");
                if (problem is null)
                {
                    SetStage("the host reads every VM's pages back: each must hold its own content");
                    for (var i = 0; i < n; i++)
                    {
                        guests[i].ForeignPages = CountForeignPages((GuestRam)vms[i].Ram, guests[i]);
                    }

                    // ksmd counts a page's state when it visits it: two more full scans (the guests still held) so
                    // the counters show the rewritten pages unshared, as a running ksmd would soon after.
                    SetStage("ksmd rescans: the rewritten pages are the writers' own now");
                    var rescanned = Rescan(machine, fullScans: 2);
                    SetRun(machine, KsmRunMode.Stop);
                    AuditPaused(machine, rescanned);
                    afterRewrite = Snapshot(machine, vms);
                }
            }

            SetStage("the guests verify their pages and exit");
            foreach (var guest in guests)
            {
                guest.Hold.Abandon();
            }

            runner.Join();
            runner = null;
            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            SetStage("done");
            List<string> violations;
            lock (_auditLock)
            {
                violations = [.. _violations];
            }

            return new KsmDemoResult
            {
                Options = _options,
                BeforeMerge = before,
                AfterMerge = afterMerge,
                AfterRewrite = afterRewrite,
                Settled = settled,
                Vms = [.. guests.Select((g, i) => Row(g, results![i]))],
                Audits = Audits,
                AuditViolations = violations,
                Problem = problem,
                Elapsed = Stopwatch.GetElapsedTime(start),
            };
        }
        finally
        {
            foreach (var guest in guests)
            {
                guest.Hold.Abandon();
            }

            runner?.Join();
            sampler?.Dispose();
            Volatile.Write(ref _machine, null);
            Volatile.Write(ref _vms, []);
            for (var i = vms.Count - 1; i >= 0; i--)
            {
                vms[i].Dispose();
            }
        }
    }

    private string CommandLineOf(int salt) => string.Create(
        CultureInfo.InvariantCulture,
        $"pages={_options.Pages} kinds={_options.Kinds} every={_options.Every} salt={salt}");

    private void SetStage(string stage) => Volatile.Write(ref _stage, stage);

    /// <summary>Waits until every guest is held at the phase (or has stopped); returns what went wrong, or null.</summary>
    private string? WaitForAll(IReadOnlyList<Vm> vms, GuestState[] guests, Func<GuestState, bool> reached, string what)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var held = 0;
            for (var i = 0; i < guests.Length; i++)
            {
                if (guests[i].Hold.HeldAt is not null && reached(guests[i]))
                {
                    held++;
                }
                else if (vms[i].Progress().Kind != VmStopKind.Running || vms[i].Stop.Request is not null)
                {
                    return $"VM {i} stopped before it {what}: {vms[i].Progress().Detail}";
                }
            }

            if (held == guests.Length)
            {
                return null;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{guests.Length - held} of {guests.Length} VMs had not {what} after {_options.PhaseTimeout.TotalSeconds:0} s");
            }

            Thread.Sleep(PollInterval);
        }
    }

    /// <summary>
    /// Switches ksmd to merge and waits until it settles: at least three full scans (a page merges on its second visit,
    /// the stable tree's sharers on the next), the last of which changed neither pages_sharing nor pages_shared.
    /// </summary>
    private bool Merge(HostMachine machine)
    {
        var ksm = machine.Host.Ksm;
        var first = ksm.Stats.FullScans;
        SetRun(machine, KsmRunMode.Merge);
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
        var lastScans = first;
        (long Sharing, long Shared) lastCounts = (-1, -1);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var stats = ksm.Stats;
            if (stats.FullScans != lastScans)
            {
                var counts = (stats.PagesSharing, stats.PagesShared);
                if (stats.FullScans - first >= 3 && counts == lastCounts && counts.PagesSharing > 0)
                {
                    return true;
                }

                lastScans = stats.FullScans;
                lastCounts = counts;
            }

            if (machine.KsmDaemon?.Failure is { } failure)
            {
                throw new InvalidOperationException($"ksmd failed: {failure.Message}", failure);
            }

            Thread.Sleep(PollInterval);
        }

        return false;
    }

    /// <summary>Lets ksmd run <paramref name="fullScans"/> more full scans; false when the phase timeout came first.</summary>
    private bool Rescan(HostMachine machine, int fullScans)
    {
        var ksm = machine.Host.Ksm;
        var target = ksm.Stats.FullScans + fullScans;
        SetRun(machine, KsmRunMode.Merge);
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
        while (ksm.Stats.FullScans < target && Stopwatch.GetTimestamp() < deadline)
        {
            if (machine.KsmDaemon?.Failure is { } failure)
            {
                throw new InvalidOperationException($"ksmd failed: {failure.Message}", failure);
            }

            Thread.Sleep(PollInterval);
        }

        return ksm.Stats.FullScans >= target;
    }

    private static void SetRun(HostMachine machine, KsmRunMode mode)
    {
        var ksmd = machine.KsmDaemon;
        ksmd?.Pause();
        try
        {
            machine.Host.Ksm.Run = mode;
        }
        finally
        {
            ksmd?.Resume();
        }
    }

    private static KsmDemoSnapshot Snapshot(HostMachine machine, IReadOnlyList<Vm> vms)
    {
        var host = machine.Host;
        return new KsmDemoSnapshot
        {
            FramesInUse = host.Stats.Memory.AllocatedFrames,
            ResidentPages = vms.Sum(vm => vm.Process!.Stats.RssPages),
            Ksm = host.Ksm.Stats,
            MergingPages = [.. vms.Select(vm => host.Ksm.ProcessStats(vm.Process!).MergingPages)],
            CowKsm = host.Stats.CowKsm,
        };
    }

    /// <summary>
    /// Audits with ksmd paused; the caller holds every guest (or they have stopped). <paramref name="settled"/>: the
    /// scanner has just finished full scans with nothing else running, so the settled KSM invariants hold too
    /// (<see cref="HostMmAuditor.CheckKsmSettled"/>).
    /// </summary>
    private void AuditPaused(HostMachine machine, bool settled)
    {
        var ksmd = machine.KsmDaemon;
        ksmd?.Pause();
        try
        {
            Audit(settled);
        }
        finally
        {
            ksmd?.Resume();
        }
    }

    private void Audit() => Audit(settled: false);

    private void Audit(bool settled)
    {
        var machine = Machine;
        if (machine is null)
        {
            return;
        }

        lock (_auditLock)
        {
            var audit = Interlocked.Increment(ref _audits);
            Record(audit, settled ? "host (settled)" : "host", settled ? HostMmAuditor.CheckKsmSettled(machine.Host) : HostMmAuditor.Check(machine.Host));
            foreach (var vm in Vms)
            {
                Record(audit, $"VM {vm.Index} MMU", MmuAuditor.Check(vm.Mmu!));
            }
        }
    }

    private void Record(long audit, string what, IReadOnlyList<string> found)
    {
        foreach (var violation in found)
        {
            if (_violations.Count < MaxViolationsKept)
            {
                _violations.Add(string.Create(CultureInfo.InvariantCulture, $"audit {audit}, {what}: {violation}"));
            }
        }
    }

    /// <summary>
    /// Reads the guest's pages through the host and counts those whose content is not the one this guest wrote: the
    /// rewritten pages carry the guest's own salt, the others the content every guest shares.
    /// </summary>
    private long CountForeignPages(GuestRam ram, GuestState guest)
    {
        Span<byte> page = stackalloc byte[(int)Paging.PageSize];
        long foreign = 0;
        for (var p = 0UL; p < (ulong)_options.Pages; p++)
        {
            ram.Read(guest.Base + (p * Paging.PageSize), page);
            var state = KsmGuestPages.SeedOf(p, _options.Every, _options.Kinds, guest.Salt);
            foreign += XorshiftPattern.Matches(page, ref state) ? 0 : 1;
        }

        return foreign;
    }

    private static KsmDemoVm Row(GuestState guest, VmRunResult result) => new()
    {
        Index = guest.Salt - 1,
        Salt = guest.Salt,
        GuestExitCode = result.GuestExitCode,
        Verdict = guest.Verdict ?? result.Detail,
        RewrittenPages = Math.Max(0, guest.Rewritten),
        ForeignPages = guest.ForeignPages,
        ChangePteHits = result.Mmu.ChangePteHits,
        ChangePteMisses = result.Mmu.ChangePteMisses,
        EptViolations = result.Mmu.Faults,
    };

    /// <summary>One guest as its console shows it; fields written on its vCPU's thread, read by the demo while it is held.</summary>
    private sealed class GuestState(int salt)
    {
        public int Salt { get; } = salt;

        public VmHold Hold { get; } = new();

        public ulong Base { get; private set; }

        public bool Phase1 { get; private set; }

        public long Rewritten { get; private set; } = -1;

        public long ForeignPages { get; set; }

        public string? Verdict { get; private set; }

        public void OnLine(string line)
        {
            if (KsmGuestPages.PagesAt().Match(line) is { Success: true } at)
            {
                Base = ulong.Parse(at.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
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
            }
            else if (line.StartsWith("ksm: OK", StringComparison.Ordinal) || line.StartsWith("ksm: FAIL", StringComparison.Ordinal))
            {
                Verdict = line;
            }
        }
    }
}
