using Hypervisor.GuestMmu.Mmu;
using System.Globalization;
using System.Text.RegularExpressions;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// <c>hv demo swap</c>: reliable guest swapping under a running guest, shown in two phases.
/// <para>Phase 1 runs memtest over guest RAM at least <see cref="SwapDemoOptions.MinOvercommit"/> times the VM process's
/// host memory limit: every page is written, swapped out, swapped in and checked word by word by the guest; after every
/// reclaim batch the host MM auditor and the MMU auditor run at a quiescent point (between interpreter slices, with the
/// background reclaimer paused); after the guest exits the host reads the whole region back through swap-in and checks
/// it against the same pattern. It ends with the count of corrupted and lost pages.</para>
/// <para>Phase 2 runs the working-set guest twice, with the secondary MMU's young answers used by reclaim and then
/// ignored, and measures how much of the hot set is resident after each cold pass.</para>
/// <para>Phase 3 runs phase 1's memtest under each of the EPT MMU's dirty tracking policies and counts the swap writes.</para>
/// </summary>
public sealed partial class SwapDemo
{
    // Interpreter slices in phase 1: a few pages of memtest each, so the audits follow the reclaim batches closely.
    private const long AuditSliceInstructions = 16 * 1024;
    private const int MaxViolationsKept = 20;

    private readonly SwapDemoOptions _options;
    private Vm? _current;
    private string _stage = "starting";

    /// <summary>Creates the demo.</summary>
    /// <exception cref="SwapDemoOptionsException">An option breaks its rule.</exception>
    public SwapDemo(SwapDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The VM running now (for a live view), or null between runs.</summary>
    public Vm? Current => Volatile.Read(ref _current);

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>Runs both phases.</summary>
    /// <exception cref="FileNotFoundException">A sample guest image is missing.</exception>
    public SwapDemoResult Run()
    {
        var memtest = RunMemtestPhase();
        var aging = new List<AgingPhaseRow> { RunWorkingSet(secondaryAging: true), RunWorkingSet(secondaryAging: false) };
        var dirty = new List<DirtyPolicyRow> { RunDirtyPolicy(DirtyTrackingPolicy.OnZap), RunDirtyPolicy(DirtyTrackingPolicy.OnMap) };
        Volatile.Write(ref _stage, "done");
        return new SwapDemoResult(_options, memtest, aging, dirty);
    }

    /// <summary>Runs phase 1 alone: memtest under the host limit, audited, then read back by the host.</summary>
    /// <exception cref="FileNotFoundException">The memtest image is missing.</exception>
    public MemtestPhaseResult RunMemtest()
    {
        var result = RunMemtestPhase();
        Volatile.Write(ref _stage, "done");
        return result;
    }

    /// <summary>
    /// Runs one half of phase 3: phase 1's memtest (without audits or read-back) under <paramref name="policy"/>, to count
    /// the swap writes each dirty tracking policy costs.
    /// </summary>
    /// <exception cref="FileNotFoundException">The memtest image is missing.</exception>
    public DirtyPolicyRow RunDirtyPolicy(DirtyTrackingPolicy policy)
    {
        var guestBytes = _options.MemtestGuestBytes;
        var mib = (guestBytes >> 20) - 8;
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("memtest", _options.GuestsFolder)));
        var passed = false;
        var console = new ConsoleLineWatcher(line => passed |= line.StartsWith("memtest: OK", StringComparison.Ordinal));
        Volatile.Write(ref _stage, $"phase 3: memtest again with the dirty policy {(policy == DirtyTrackingPolicy.OnMap ? "map (mark dirty when mapped writable)" : "zap (report dirty sptes on zap)")}");
        // Swap four times guest RAM stays under half full (Linux's vm_swap_full), so a page swapped in for a read keeps
        // its slot and its swap-cache copy stays clean until something marks it dirty: the difference under test.
        var baseOptions = BaseOptions(guestBytes, _options.MemtestHostBytes, secondaryAging: true, $"mib={mib} seed={_options.Seed}");
        var options = baseOptions with { DirtyTracking = policy, Swap = baseOptions.Swap! with { SizeBytes = 4 * guestBytes } };
        using var vm = new Vm(options, new GuestConsole(console));
        vm.Boot(image);
        var run = RunShown(vm);

        var reclaim = vm.Host!.Reclaim.Stats;
        return new DirtyPolicyRow
        {
            Policy = policy,
            Pswpout = reclaim.Pswpout,
            Pswpin = reclaim.Pswpin,
            DirtyMarkedOnMap = run.Mmu.DirtyMarkedOnMap,
            DirtyPropagated = run.Mmu.DirtyPropagated,
            GuestPassed = passed && run.Kind == VmStopKind.GuestExit && run.GuestExitCode == 0,
            Elapsed = run.Elapsed,
        };
    }

    /// <summary>Runs <paramref name="vm"/> to its end, shown by <see cref="Current"/> while it runs.</summary>
    private VmRunResult RunShown(Vm vm)
    {
        Volatile.Write(ref _current, vm);
        using var sampler = TraceSampler.Start(_options.Trace, vm);
        try
        {
            return vm.Run();
        }
        finally
        {
            Volatile.Write(ref _current, null);
        }
    }

    private VmOptions BaseOptions(ulong guestBytes, ulong hostBytes, bool secondaryAging, string commandLine) => new()
    {
        MemoryBytes = guestBytes,
        HostMemoryBytes = hostBytes,
        Swap = new SwapOptions
        {
            Kind = _options.SwapDevice,
            Path = _options.SwapPath,
            DirectIo = _options.SwapDirectIo,
            SizeBytes = Math.Max(SwapOptions.MinSizeBytes, guestBytes + (16UL << 20)),
        },
        LruPolicy = _options.LruPolicy,
        SecondaryAging = secondaryAging,
        CommandLine = commandLine,
        Trace = _options.Trace,
    };

    private MemtestPhaseResult RunMemtestPhase()
    {
        var guestBytes = _options.MemtestGuestBytes;
        var mib = (guestBytes >> 20) - 8;
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("memtest", _options.GuestsFolder)));
        (ulong Start, ulong End)? region = null;
        string? verdict = null;
        long guestCorrupted = 0;
        var console = new ConsoleLineWatcher(line =>
        {
            if (MemtestRegion().Match(line) is { Success: true } m)
            {
                region = (ulong.Parse(m.Groups[1].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture), ulong.Parse(m.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
            else if (line.StartsWith("memtest: OK", StringComparison.Ordinal))
            {
                verdict = line;
            }
            else if (MemtestFail().Match(line) is { Success: true } fail)
            {
                verdict = line;
                guestCorrupted = long.Parse(fail.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
            }
        });

        Volatile.Write(ref _stage, $"phase 1: memtest over {mib} MiB of {guestBytes >> 20} MiB guest RAM, host limit {_options.MemtestHostBytes >> 20} MiB");
        using var vm = new Vm(BaseOptions(guestBytes, _options.MemtestHostBytes, secondaryAging: true, $"mib={mib} seed={_options.Seed}"), new GuestConsole(console));
        var host = vm.Host!;
        var process = vm.Process!;
        var ram = (GuestRam)vm.Ram;
        vm.Boot(image);
        var auditor = _options.AuditEveryBatch ? new BatchAuditor(vm, MaxViolationsKept) : null;
        vm.Emulated!.Cpus[0].SliceInstructions = AuditSliceInstructions;
        var run = RunShown(vm);

        var atGuestExit = host.Reclaim.Stats;
        long regionPages = 0, resident = 0, swapped = 0, lost = 0, hostCorrupted = 0;
        if (region is { } r && run.Kind == VmStopKind.GuestExit)
        {
            regionPages = (long)((r.End - r.Start) / Paging.PageSize);
            var counts = process.PageTable.CountEntries(ram.Base + r.Start, ram.Base + r.End);
            resident = counts.Present;
            swapped = counts.Swap;
            lost = regionPages - (counts.Present + counts.Swap);
            Volatile.Write(ref _stage, "phase 1: the host reads the region back through swap-in");
            (hostCorrupted, var unreadable) = ReadBack(ram, r.Start, r.End, _options.Seed, auditor);
            lost += unreadable;
            auditor?.AuditNow();
        }

        return new MemtestPhaseResult
        {
            GuestBytes = guestBytes,
            HostLimitBytes = _options.MemtestHostBytes,
            RegionPages = regionPages,
            Stop = run.Kind,
            GuestExitCode = run.GuestExitCode,
            GuestVerdict = verdict ?? run.Detail,
            GuestCorruptedPages = guestCorrupted,
            HostCorruptedPages = hostCorrupted,
            LostPages = lost,
            Audits = auditor?.Audits ?? 0,
            KswapdAudits = auditor?.KswapdAudits ?? 0,
            DirectAudits = auditor?.DirectAudits ?? 0,
            ReadBackAudits = auditor?.HostAccessAudits ?? 0,
            AuditViolations = auditor?.Violations ?? [],
            ResidentAtExit = resident,
            SwappedAtExit = swapped,
            Reclaim = host.Reclaim.Stats,
            ReclaimAtGuestExit = atGuestExit,
            SwapDevice = DescribeSwap(vm),
            Elapsed = run.Elapsed,
        };
    }

    /// <summary>
    /// Reads memtest's region back through the host (faulting swapped pages in) and compares it with memtest's pattern:
    /// xorshift64 from the seed, one word after another. Returns the pages that differ and the pages that could not be read.
    /// </summary>
    private static (long Corrupted, long Unreadable) ReadBack(GuestRam ram, ulong start, ulong end, ulong seed, BatchAuditor? auditor)
    {
        var state = seed == 0 ? 1 : seed;
        Span<byte> page = stackalloc byte[(int)Paging.PageSize];
        long corrupted = 0, unreadable = 0;
        for (var gpa = start; gpa < end; gpa += Paging.PageSize)
        {
            var readable = true;
            try
            {
                ram.Read(gpa, page);
            }
            catch (Exception exception) when (exception is MemoryFailureException or OutOfMemoryFaultException or HostFaultException)
            {
                readable = false;
                unreadable++;
            }

            auditor?.AfterHostAccess();

            var matches = XorshiftPattern.Matches(page, ref state);
            corrupted += readable && !matches ? 1 : 0;
        }

        return (corrupted, unreadable);
    }

    /// <summary>Runs one half of phase 2: the working-set guest with the secondary MMU's young answers used or ignored.</summary>
    /// <exception cref="FileNotFoundException">The workingset image is missing.</exception>
    public AgingPhaseRow RunWorkingSet(bool secondaryAging)
    {
        var guestBytes = (ulong)(_options.HotMib + _options.ColdMib + 16) << 20;
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("workingset", _options.GuestsFolder)));
        (ulong Start, long Pages)? hot = null;
        string? verdict = null;
        var resident = new List<double>();
        long swapInsAtRound1 = -1;
        Vm? running = null;
        var console = new ConsoleLineWatcher(line =>
        {
            var vm = running;
            if (vm is null)
            {
                return;
            }

            if (WorkingSetHot().Match(line) is { Success: true } m)
            {
                hot = (ulong.Parse(m.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture), long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture));

                // --report charts the hot set's resident pages over the run: aging on keeps them, aging off loses them.
                var hotStart = ((GuestRam)vm.Ram).Base + hot.Value.Start;
                var hotEnd = hotStart + ((ulong)hot.Value.Pages * Paging.PageSize);
                vm.History?.Watch(vm, "hot set resident", () => vm.Process!.PageTable.CountEntries(hotStart, hotEnd).Present);
            }
            else if (line.StartsWith("workingset: round ", StringComparison.Ordinal) && hot is { } h)
            {
                // The round's line follows its cold pass: what of the hot set survived it.
                var ram = (GuestRam)vm.Ram;
                var start = ram.Base + h.Start;
                var counts = vm.Process!.PageTable.CountEntries(start, start + ((ulong)h.Pages * Paging.PageSize));
                resident.Add((double)counts.Present / h.Pages);
                if (swapInsAtRound1 < 0)
                {
                    swapInsAtRound1 = vm.Host!.Reclaim.Stats.Pswpin;
                }
            }
            else if (line.StartsWith("workingset: OK", StringComparison.Ordinal) || line.StartsWith("workingset: FAIL", StringComparison.Ordinal))
            {
                verdict = line;
            }
        });

        var commandLine = $"hot={_options.HotMib} cold={_options.ColdMib} passes={_options.Rounds} hotper=8";
        Volatile.Write(ref _stage, $"phase 2: working set (hot {_options.HotMib} MiB, cold {_options.ColdMib} MiB, host limit {_options.WorkingSetHostBytes >> 20} MiB), secondary aging {(secondaryAging ? "on" : "off")}");
        using var machine = new Vm(BaseOptions(guestBytes, _options.WorkingSetHostBytes, secondaryAging, commandLine), new GuestConsole(console));
        machine.Boot(image);
        running = machine;
        var run = RunShown(machine);

        return new AgingPhaseRow
        {
            SecondaryAging = secondaryAging,
            HotPages = hot?.Pages ?? 0,
            HotResidentAfterColdPass = resident,
            SwapInsAfterFirstRound = swapInsAtRound1 < 0 ? 0 : machine.Host!.Reclaim.Stats.Pswpin - swapInsAtRound1,
            Stop = run.Kind,
            GuestExitCode = run.GuestExitCode,
            GuestVerdict = verdict ?? run.Detail,
            Reclaim = machine.Host!.Reclaim.Stats,
            Elapsed = run.Elapsed,
        };
    }

    private static string DescribeSwap(Vm vm) => vm.Options.Swap is { } swap
        ? swap.Kind == SwapDeviceKind.Zram ? "zram (LZ4 in memory)" : $"file {swap.Path ?? "(temporary)"}{(swap.DirectIo ? ", O_DIRECT" : string.Empty)}"
        : "none";

    [GeneratedRegex(@"^memtest: \d+ MiB at 0x([0-9a-f]+)-0x([0-9a-f]+)")]
    private static partial Regex MemtestRegion();

    [GeneratedRegex(@"^memtest: FAIL, \d+ bad words in (\d+) pages")]
    private static partial Regex MemtestFail();

    [GeneratedRegex(@"^workingset: hot \d+ MiB \((\d+) pages\) at 0x([0-9a-f]+)")]
    private static partial Regex WorkingSetHot();
}
