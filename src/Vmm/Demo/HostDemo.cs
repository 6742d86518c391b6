using System.Diagnostics;
using System.Text;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tracing;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// A scripted run of the host memory manager (the primary MMU model in <c>src/HostMm</c>) with secondary
/// MMUs listening on its notifier chain. The script only makes the process's system calls and memory
/// accesses; every notifier call, PTE change, TLB flush and frame free in the timeline is issued by the
/// host itself, in the order of <c>reference/mmu-notifier.md</c> §3. Two steps are still played by the
/// script: aging of one chosen page (the host's reclaimer ages whole LRU lists, which would not pick it; <c>hv demo
/// swap</c> shows real reclaim) and the OOM reaper, which the host does not have.
/// </summary>
/// <remarks>
/// <para>Subscribers, oldest first: a <see cref="SleepingNotifier"/> that refuses non-blockable starts, a
/// <see cref="UserEventChannel"/> with three regions, and a <see cref="NotifierEventRecorder"/> that is
/// both a listed subscriber and an interval subscriber. The host's trace
/// (<see cref="RecorderHostTrace"/>) writes the host steps into the recorder's timeline.</para>
/// <para>After every step <see cref="HostMmAuditor.Check"/> cross-checks the host. Single-threaded and
/// deterministic for a seed: a new host per run, so frame numbers and mm ids repeat.</para>
/// </remarks>
internal sealed class HostDemo
{
    /// <summary>Host RAM: the smallest the host accepts.</summary>
    public const ulong HostBytes = HostMemoryOptions.MinTotalBytes;

    /// <summary>The trace process of the demo's host process (<c>--trace</c>).</summary>
    private const int TracePid = TraceRecorder.HostPid + 1;

    /// <summary>Pages 0 up to this one (exclusive) get the pattern; the rest stay untouched at first.</summary>
    public const int WrittenPages = 60;

    /// <summary>The never-written page the script reads (the zero page).</summary>
    public const int ZeroReadPage = 60;

    /// <summary>The page the parent writes after fork (the copy-on-write break).</summary>
    public const int CopyOnWritePage = 30;

    /// <summary>The page the script ages.</summary>
    public const int AgedPage = 5;

    /// <summary>Largest random range, in pages.</summary>
    public const int MaxRandomPages = 4;

    private readonly int _seed;
    private readonly int _randomOperations;
    private readonly ILogger _scriptLog;
    private readonly ILogger _hostLog;
    private readonly NotifierEventRecorder _recorder = new();
    private readonly TraceRecorder? _trace;
    private readonly List<AuditFinding> _findings = [];
    private readonly Host _host;
    private readonly Mm _mm;
    private HostDemoLayout _layout = new(Hva.Zero);
    private int _auditedSteps;

    private HostDemo(int seed, int randomOperations, ILoggerFactory loggerFactory, Host host, TraceRecorder? trace)
    {
        _seed = seed;
        _randomOperations = randomOperations;
        _scriptLog = loggerFactory.CreateLogger(LogCategories.Demo);
        _hostLog = loggerFactory.CreateLogger(LogCategories.HostMm);
        _host = host;
        _trace = trace;
        var timeline = new RecorderHostTrace(_recorder);
        _mm = host.CreateMm();
        if (trace is null)
        {
            _host.Trace = timeline;
            return;
        }

        var file = new TracingHostTrace(trace);
        file.MapProcess(_mm, TracePid);
        _host.Trace = new FanOutHostTrace(timeline, file);
        trace.NameProcess(TracePid, "process");
        trace.NameCurrentThread("host-demo");
    }

    /// <summary>Runs the script once on a new host.</summary>
    /// <param name="seed">Seed of the random operations.</param>
    /// <param name="randomOperations">How many random operations to issue (0 or more).</param>
    /// <param name="loggerFactory">Where the steps (Information) and the audits (Debug, Warning) are logged.</param>
    /// <param name="trace">
    /// Where the run's timeline is recorded (<c>--trace FILE</c>): each script step as a span, the process's notifier
    /// invalidations (a passive subscriber, registered first) and the host's TLB flushes; null for none.
    /// </param>
    public static HostDemoResult Run(int seed, int randomOperations, ILoggerFactory loggerFactory, TraceRecorder? trace = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(randomOperations);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = HostBytes },
            LegacyChangePte = false,
        });
        var demo = new HostDemo(seed, randomOperations, loggerFactory, host, trace);
        try
        {
            return demo.Execute();
        }
        finally
        {
            // A failed run still leaves a host that can be disposed: every process must have exited.
            foreach (var mm in host.Mms)
            {
                mm.Dispose();
            }
        }
    }

    /// <summary>The bytes the script writes at the start of page <paramref name="page"/>, generation <paramref name="generation"/>.</summary>
    public static byte[] Pattern(int page, int generation) =>
        Encoding.ASCII.GetBytes(FormattableString.Invariant($"page {page:00} gen {generation}"));

    private HostDemoResult Execute()
    {
        var mm = _mm;
        var chain = mm.Notifiers;

        // Registration, oldest first: the list is walked newest first, so the recorder sees every start
        // first and the sleeper last (and the trace file's subscriber, with --trace, after them all).
        if (_trace is { } trace)
        {
            new TracingNotifier(trace, TracePid, chain).Register();
        }

        chain.Register(new SleepingNotifier(_recorder));
        using var channel = UserEventChannel.Open(mm);
        chain.Register(_recorder);

        // mmap issues no notifier call (nothing was mapped there); its mark is written once the address is known.
        var start = mm.Mmap(HostDemoLayout.Pages * Paging.PageSize, Protection.Read | Protection.Write);
        _layout = new HostDemoLayout(start);
        Note($"mmap({HostDemoLayout.Pages} pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)", _layout.MappingStart, _layout.MappingEnd);
        Audit("mmap");
        foreach (var (cookie, regionStart, regionEnd) in _layout.UserRegions)
        {
            channel.RegisterRegion(cookie, regionStart, regionEnd);
        }

        chain.InsertInterval(_layout.IntervalStart, _layout.IntervalEnd - _layout.IntervalStart, _recorder);
        _scriptLog.LogInformation("mm {MmId}: {Subscribers} subscribers and 1 interval subscription registered", mm.Id, chain.SubscriberCount);

        Step($"write: a pattern into pages 0-{WrittenPages - 1} (demand-zero faults)", P(0), P(WrittenPages), () =>
        {
            for (var page = 0; page < WrittenPages; page++)
            {
                mm.Write(P(page), Pattern(page, 1));
            }
        });
        Step($"read: page {ZeroReadPage}, never written (zero page)", P(ZeroReadPage), P(ZeroReadPage + 1), () =>
        {
            var bytes = new byte[Pattern(ZeroReadPage, 1).Length];
            mm.Read(P(ZeroReadPage), bytes);
            Expect(bytes.All(b => b == 0), $"page {ZeroReadPage} should read as zeroes");
        });
        Step("mprotect(pages 8-15, PROT_READ)", P(8), P(16), () => mm.Mprotect(P(8), Bytes(8), Protection.Read));
        Step("munmap(pages 20-23)", P(20), P(24), () => mm.Munmap(P(20), Bytes(4)));
        Step("madvise(pages 32-35, MADV_DONTNEED)", P(32), P(36), () => mm.Madvise(P(32), Bytes(4), Advice.DontNeed));
        Step("madvise(pages 36-39, MADV_FREE)", P(36), P(40), () => mm.Madvise(P(36), Bytes(4), Advice.Free));
        Step("mremap(pages 48-55 to 72-79, MREMAP_MAYMOVE|MREMAP_FIXED)", P(48), P(56), () =>
            mm.Mremap(P(48), Bytes(8), Bytes(8), MremapFlags.MayMove | MremapFlags.Fixed, P(72)));
        var reads = new List<UserEventRead> { ReadChannel(channel, "before fork") };

        Mm? child = null;
        Step("fork(): a child mm sharing every page copy-on-write", Hva.Zero, Hva.AddressSpaceEnd, () => child = mm.Fork());
        var forked = child ?? throw new InvalidOperationException("fork returned no child");
        CopyOnWrite(forked);
        Aging();
        RandomOperations();
        OomReaper(P(56), P(64));
        Step($"exit() of child mm {forked.Id}", Hva.Zero, Hva.AddressSpaceEnd, forked.Exit);

        var mmStats = mm.Stats;
        var hostStatsBeforeExit = _host.Stats;
        Step(
            "exit(): release first, then the final unmap (only intervals see it)",
            Hva.Zero,
            Hva.AddressSpaceEnd,
            mm.Exit);
        reads.Add(ReadChannel(channel, "after exit"));

        return new HostDemoResult(
            _seed,
            _randomOperations,
            Environment.CurrentManagedThreadId,
            mm.Id,
            forked.Id,
            _host.ZeroPfn,
            _layout,
            _recorder.Events,
            reads,
            chain.Stats,
            channel.Stats,
            mmStats,
            hostStatsBeforeExit,
            _host.Stats,
            _auditedSteps,
            _findings);
    }

    /// <summary>The parent writes a shared page: a copy-on-write break in a one-page Clear range; the child keeps the old data.</summary>
    private void CopyOnWrite(Mm child)
    {
        var page = P(CopyOnWritePage);
        var end = P(CopyOnWritePage + 1);
        var written = Pattern(CopyOnWritePage, 2);
        Step($"write: page {CopyOnWritePage} in mm {_mm.Id} after fork (copy-on-write break)", page, end, () => _mm.Write(page, written));

        var childSees = new byte[written.Length];
        var parentSees = new byte[written.Length];
        child.Read(page, childSees);
        _mm.Read(page, parentSees);
        Expect(childSees.AsSpan().SequenceEqual(Pattern(CopyOnWritePage, 1)), $"child mm {child.Id} should still read generation 1");
        Expect(parentSees.AsSpan().SequenceEqual(written), $"mm {_mm.Id} should read what it wrote");
        Note(
            $"child mm {child.Id} still reads \"{Encoding.ASCII.GetString(childSees)}\"; mm {_mm.Id} reads \"{Encoding.ASCII.GetString(parentSees)}\"",
            page,
            end);
    }

    /// <summary>
    /// Page aging as rmap's folio_referenced_one does it: no start/end, the young ops under the page-table
    /// lock. The script calls the chain's young ops itself for one chosen page; the host's reclaimer ages whole LRU
    /// lists (see <c>hv demo swap</c>).
    /// </summary>
    private void Aging()
    {
        var page = P(AgedPage);
        var end = P(AgedPage + 1);
        Step(
            $"aging of page {AgedPage}: the script calls clear_flush_young, test_young (reclaim would age whole LRU lists)",
            page,
            end,
            () =>
            {
                _recorder.YoungAnswer = true;
                var young = _mm.Notifiers.ClearFlushYoung(page, end);
                Note($"secondaries say {(young ? "young" : "old")}: the page would stay active", page, end);

                _recorder.YoungAnswer = false;
                var stillYoung = _mm.Notifiers.TestYoung(page);
                Note($"test_young now says {(stillYoung ? "young" : "old")}: the accessed bits were cleared", page, end);
            });
    }

    /// <summary>Random operations on random ranges inside the process's current VMAs.</summary>
    private void RandomOperations()
    {
        var random = new Random(_seed);
        for (var i = 1; i <= _randomOperations; i++)
        {
            // Every draw is made whatever the branch, so one seed always draws the same sequence.
            var operation = (RandomHostOperation)random.Next(Enum.GetValues<RandomHostOperation>().Length);
            var vmaPick = random.Next(int.MaxValue);
            var pagePick = random.Next(int.MaxValue);
            var length = (ulong)random.Next(1, MaxRandomPages + 1);

            var vmas = _mm.Vmas;
            if (vmas.Count == 0)
            {
                Step($"random {i}: nothing is mapped any more", Hva.Zero, Hva.Zero, () => { });
                continue;
            }

            var vma = vmas[vmaPick % vmas.Count];
            var first = (ulong)pagePick % vma.Pages;
            var start = vma.Start + (first * Paging.PageSize);
            var end = start + (Math.Min(vma.Pages - first, length) * Paging.PageSize);
            var bytes = end - start;
            var writable = (vma.Protection & Protection.Write) != 0;
            var (name, action) = operation switch
            {
                RandomHostOperation.DontNeed => ("madvise(MADV_DONTNEED)", () => _mm.Madvise(start, bytes, Advice.DontNeed)),
                RandomHostOperation.Free => ("madvise(MADV_FREE)", () => _mm.Madvise(start, bytes, Advice.Free)),
                RandomHostOperation.ProtectRead => ("mprotect(PROT_READ)", () => _mm.Mprotect(start, bytes, Protection.Read)),
                RandomHostOperation.ProtectReadWrite => ("mprotect(PROT_READ|PROT_WRITE)", () => _mm.Mprotect(start, bytes, Protection.Read | Protection.Write)),
                RandomHostOperation.Write when writable => ("write", () => Touch(start, end, write: true)),
                RandomHostOperation.Write => ("read (the mapping is read-only)", () => Touch(start, end, write: false)),
                _ => ("munmap", (Action)(() => _mm.Munmap(start, bytes))),
            };
            Step($"random {i}: {name} on {_layout.DescribePages(start, end)}", start, end, action);
        }
    }

    private void Touch(Hva start, Hva end, bool write)
    {
        for (var page = start; page < end; page += Paging.PageSize)
        {
            var index = (int)_layout.PageIndex(page);
            if (write)
            {
                _mm.Write(page, Pattern(index, 3));
            }
            else
            {
                _mm.Read(page, new byte[Pattern(index, 3).Length]);
            }
        }
    }

    /// <summary>
    /// The OOM reaper's non-blockable start, which the sleeping subscriber refuses; the host has no OOM reaper
    /// yet, so the script issues it on the chain as __oom_reap_task_mm would. Refused, it zaps nothing and
    /// issues no end; the subscribers that had accepted get their end from the chain.
    /// </summary>
    private void OomReaper(Hva start, Hva end) => Step(
        $"OOM reaper on {_layout.DescribePages(start, end)}: the script calls start_nonblock(UNMAP) (no reaper yet)",
        start,
        end,
        () =>
        {
            var range = new NotifierRange(_mm, start, end, NotifierEvent.Unmap, blockable: false);
            if (_mm.Notifiers.InvalidateRangeStart(ref range))
            {
                // Not reached with the sleeper listed; kept so the script stays correct if it is removed.
                _mm.Notifiers.InvalidateRangeEnd(ref range);
                return;
            }

            Note("start refused (-EAGAIN): no end; the reaper would retry later", start, end);
        });

    private void Step(string label, Hva start, Hva end, Action action)
    {
        Note(label, start, end);
        var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
        action();
        _trace?.Complete(TraceEventTypes.DemoStep, TracePid, started, text0: label);
        Audit(label);
    }

    private void Audit(string step)
    {
        _auditedSteps++;
        var violations = HostMmAuditor.Check(_host);
        if (violations.Count == 0)
        {
            _hostLog.LogDebug("after {Step}: host consistent, {Processes} processes, {Rss} resident pages", step, _host.Mms.Count, _host.Stats.RssPages);
            return;
        }

        _findings.Add(new AuditFinding(step, violations));
        foreach (var violation in violations)
        {
            _hostLog.LogWarning("after {Step}: {Violation}", step, violation);
        }
    }

    private void Note(string label, Hva start, Hva end)
    {
        _scriptLog.LogInformation("{Step} {Range}", label, HostDemoReport.FormatRange(start, end));
        _recorder.RecordHost(NotifierTraceKind.Mark, _mm.Id, start, end, label: label);
    }

    /// <summary>Reads the channel until it is empty (the last event closes the batch) and notes it in the timeline.</summary>
    private UserEventRead ReadChannel(UserEventChannel channel, string when)
    {
        var events = new List<UserEvent>();
        Span<UserEvent> buffer = stackalloc UserEvent[8];
        int read;
        while ((read = channel.Read(buffer)) > 0)
        {
            foreach (var userEvent in buffer[..read])
            {
                events.Add(userEvent);
            }
        }

        var invalidates = events.Count(e => e.Type == UserEventType.Invalidate);
        Note($"user channel read {when}: {(events.Count == 0 ? "nothing pending" : $"{invalidates} invalidate events + last")}", Hva.Zero, Hva.Zero);
        return new UserEventRead(when, events);
    }

    private Hva P(int page) => _layout.Page(page);

    private static ulong Bytes(int pages) => (ulong)pages * Paging.PageSize;

    /// <summary>A check of the host's observable behaviour; failing it is a bug in the host, reported as one line.</summary>
    private static void Expect(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"host demo self-check failed: {what}");
        }
    }
}
