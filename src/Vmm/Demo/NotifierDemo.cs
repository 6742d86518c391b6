using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Cli;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// A scripted run of the notifier contract on a <see cref="DemoMm"/>. There is no host memory manager yet,
/// so the script plays the host: it issues the chain calls directly, in the order Linux's mprotect, munmap,
/// page aging, the OOM reaper and exit_mmap issue them (<c>reference/mmu-notifier.md</c> §3), and records
/// its own host steps (PTE changes, TLB flushes, frame frees) into the same timeline as the callbacks.
/// </summary>
/// <remarks>
/// Subscribers, oldest first: a <see cref="SleepingNotifier"/> that refuses non-blockable starts, a
/// <see cref="UserEventChannel"/> with three regions, and a <see cref="NotifierEventRecorder"/> that is
/// both a listed subscriber and an interval subscriber. Single-threaded and deterministic for a seed.
/// </remarks>
internal sealed class NotifierDemo
{
    /// <summary>The mm's id.</summary>
    public const int MmId = 1;

    /// <summary>Pages in the demo's one anonymous mapping.</summary>
    public const int Pages = 64;

    /// <summary>Largest random range, in pages.</summary>
    public const int MaxRandomPages = 4;

    /// <summary>Ranges of more pages than this are shown as one host row instead of one per page.</summary>
    private const int PerPageRowLimit = 4;

    /// <summary>Frame number backing page 0 of the mapping; page i is backed by this plus i.</summary>
    private const ulong FirstPfn = 0x1000;

    private static readonly (NotifierEvent Event, string Name)[] s_randomOperations =
    [
        (NotifierEvent.Clear, "madvise(MADV_DONTNEED)"),
        (NotifierEvent.ProtectionVma, "mprotect(PROT_READ)"),
        (NotifierEvent.ProtectionPage, "page_mkclean (writeback)"),
        (NotifierEvent.SoftDirty, "clear_refs (soft-dirty reset)"),
    ];

    private readonly int _seed;
    private readonly int _randomRanges;
    private readonly ILogger _chainLog;
    private readonly ILogger _scriptLog;
    private readonly DemoMm _mm = new(MmId);
    private readonly NotifierEventRecorder _recorder = new();
    private readonly bool[] _mapped = Enumerable.Repeat(true, Pages).ToArray();

    private NotifierDemo(int seed, int randomRanges, ILoggerFactory loggerFactory)
    {
        _seed = seed;
        _randomRanges = randomRanges;
        _chainLog = loggerFactory.CreateLogger(LogCategories.Notifier);
        _scriptLog = loggerFactory.CreateLogger(LogCategories.Demo);
    }

    /// <summary>Start of the mapping.</summary>
    public static Hva MappingStart { get; } = new(0x4000_0000);

    /// <summary>Exclusive end of the mapping.</summary>
    public static Hva MappingEnd { get; } = MappingStart + (Pages * Paging.PageSize);

    /// <summary>Start of the recorder's interval subscription (pages 16..47).</summary>
    public static Hva IntervalStart { get; } = PageAt(16);

    /// <summary>Exclusive end of the recorder's interval subscription.</summary>
    public static Hva IntervalEnd { get; } = PageAt(48);

    /// <summary>The user channel's regions: cookie 1 = pages 0..15, 2 = pages 32..47, 3 = pages 48..63.</summary>
    public static IReadOnlyList<(ulong Cookie, Hva Start, Hva End)> UserRegions { get; } =
    [
        (1, PageAt(0), PageAt(16)),
        (2, PageAt(32), PageAt(48)),
        (3, PageAt(48), PageAt(64)),
    ];

    /// <summary>Runs the script once.</summary>
    /// <param name="seed">Seed of the random ranges.</param>
    /// <param name="randomRanges">How many random ranges to issue (0 or more).</param>
    /// <param name="loggerFactory">Where the script and the chain calls are logged (Debug and Information).</param>
    public static NotifierDemoResult Run(int seed, int randomRanges, ILoggerFactory loggerFactory)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(randomRanges);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        return new NotifierDemo(seed, randomRanges, loggerFactory).Execute();
    }

    private static Hva PageAt(int page) => MappingStart + ((ulong)page * Paging.PageSize);

    private static int PageIndex(Hva address) => (int)((address - MappingStart) / Paging.PageSize);

    private static Pfn FrameOf(int page) => new(FirstPfn + (ulong)page);

    private NotifierDemoResult Execute()
    {
        var chain = _mm.Notifiers;

        // Registration, oldest first: the list is walked newest first, so the recorder sees every start
        // first and the sleeper last.
        var sleeper = new SleepingNotifier(_recorder);
        chain.Register(sleeper);
        using var channel = UserEventChannel.Open(_mm);
        foreach (var (cookie, start, end) in UserRegions)
        {
            channel.RegisterRegion(cookie, start, end);
        }

        chain.Register(_recorder);
        chain.InsertInterval(IntervalStart, IntervalEnd - IntervalStart, _recorder);
        _scriptLog.LogInformation("mm {MmId}: {Subscribers} subscribers and 1 interval subscription registered", MmId, chain.SubscriberCount);

        HostOperation("mprotect(PROT_READ)", NotifierEvent.ProtectionVma, PageAt(14), PageAt(18));
        HostOperation("munmap", NotifierEvent.Unmap, PageAt(32), PageAt(34));
        Aging(PageAt(5));
        var reads = new List<UserEventRead> { ReadChannel(channel, "after aging") };

        var random = new Random(_seed);
        for (var i = 0; i < _randomRanges; i++)
        {
            var (notifierEvent, name) = s_randomOperations[random.Next(s_randomOperations.Length)];
            var first = random.Next(Pages);
            var last = Math.Min(Pages, first + random.Next(1, MaxRandomPages + 1));
            HostOperation($"random {i + 1}: {name}", notifierEvent, PageAt(first), PageAt(last));
        }

        OomReaper(PageAt(52), MappingEnd);
        Exit();

        reads.Add(ReadChannel(channel, "after exit"));
        return new NotifierDemoResult(
            _seed,
            _randomRanges,
            Environment.CurrentManagedThreadId,
            _recorder.Events,
            reads,
            chain.Stats,
            channel.Stats);
    }

    /// <summary>
    /// One invalidating host operation in Linux's order: start; the PTE changes (under the page-table lock);
    /// end; the CPU TLB flush (tlb_finish_mmu), except where the flush goes with each PTE; then, for
    /// clears, the frame frees, after end.
    /// </summary>
    private void HostOperation(string name, NotifierEvent notifierEvent, Hva start, Hva end)
    {
        Note(name, start, end);
        var clears = notifierEvent is NotifierEvent.Unmap or NotifierEvent.Clear;
        var flushWithEachPte = notifierEvent is NotifierEvent.ProtectionPage;
        var range = new NotifierRange(_mm, start, end, notifierEvent);
        Start(ref range);

        var pages = MappedPages(start, end);
        ChangePtes(pages, start, end, clears);
        if (flushWithEachPte && pages.Count > 0)
        {
            Host(NotifierTraceKind.HostTlbFlush, start, end, "flushed with each PTE (ptep_clear_flush)");
        }

        End(ref range);
        if (!flushWithEachPte)
        {
            Host(NotifierTraceKind.HostTlbFlush, start, end, "tlb_finish_mmu");
        }

        if (clears)
        {
            FreeFrames(pages, start, end);
        }
    }

    /// <summary>Page aging (folio_referenced_one): no start/end; the young ops run under the page-table lock.</summary>
    private void Aging(Hva page)
    {
        var end = page + Paging.PageSize;
        Note("aging: folio_referenced (no start/end)", page, end);
        Host(NotifierTraceKind.HostPteChange, page, end, "CPU accessed bit test-and-cleared", FrameOf(PageIndex(page)));
        Host(NotifierTraceKind.HostTlbFlush, page, end, "ptep_clear_flush_young");

        _recorder.YoungAnswer = true;
        var young = _mm.Notifiers.ClearFlushYoung(page, end);
        _chainLog.LogDebug("clear_flush_young mm {MmId} [{Start}, {End}) -> {Young}", MmId, page, end, young);
        Note($"secondaries say {(young ? "young" : "old")}: the page stays on the active list", page, end);

        _recorder.YoungAnswer = false;
        var stillYoung = _mm.Notifiers.TestYoung(page);
        _chainLog.LogDebug("test_young mm {MmId} {Address} -> {Young}", MmId, page, stillYoung);
        Note($"test_young now says {(stillYoung ? "young" : "old")}: the accessed bits were cleared", page, end);
    }

    /// <summary>The OOM reaper: a non-blockable start that a sleeping subscriber refuses; no end follows.</summary>
    private void OomReaper(Hva start, Hva end)
    {
        Note("OOM reaper: start_nonblock(UNMAP)", start, end);
        var range = new NotifierRange(_mm, start, end, NotifierEvent.Unmap, blockable: false);
        var started = _mm.Notifiers.InvalidateRangeStart(ref range);
        _chainLog.LogDebug("invalidate_range_start {Range} -> {Result}", range, started ? "ok" : "refused");
        if (started)
        {
            // Not reached with the sleeper listed; kept so the script stays correct if it is removed.
            End(ref range);
            return;
        }

        Note("start refused (-EAGAIN): no end; the reaper retries these pages later", start, end);
    }

    /// <summary>exit_mmap: release every subscriber (while still listed), then the final unmap of everything.</summary>
    private void Exit()
    {
        Note("exit_mmap: mmu_notifier_release", Hva.Zero, Hva.AddressSpaceEnd);
        _mm.Notifiers.Release();
        _chainLog.LogDebug("release mm {MmId}: every subscriber released and unlisted", MmId);

        Note("exit_mmap: unmap_vmas (only interval subscribers still listen)", Hva.Zero, Hva.AddressSpaceEnd);
        var range = new NotifierRange(_mm, Hva.Zero, Hva.AddressSpaceEnd, NotifierEvent.Unmap);
        Start(ref range);
        var pages = MappedPages(MappingStart, MappingEnd);
        ChangePtes(pages, MappingStart, MappingEnd, clear: true);
        End(ref range);
        Host(NotifierTraceKind.HostTlbFlush, MappingStart, MappingEnd, "tlb_finish_mmu");
        FreeFrames(pages, MappingStart, MappingEnd);
    }

    private void Start(ref NotifierRange range)
    {
        var started = _mm.Notifiers.InvalidateRangeStart(ref range);
        _chainLog.LogDebug("invalidate_range_start {Range} -> {Result}", range, started ? "ok" : "refused");
        if (!started)
        {
            throw new InvalidOperationException($"{range}: a blockable start was refused; the chain should have thrown");
        }
    }

    private void End(ref NotifierRange range)
    {
        _mm.Notifiers.InvalidateRangeEnd(ref range);
        _chainLog.LogDebug("invalidate_range_end {Range}", range);
    }

    private List<int> MappedPages(Hva start, Hva end)
    {
        var first = Math.Max(0, PageIndex(Max(start, MappingStart)));
        var last = PageIndex(Min(end, MappingEnd));
        return Enumerable.Range(first, Math.Max(0, last - first)).Where(page => _mapped[page]).ToList();
    }

    private void ChangePtes(List<int> pages, Hva start, Hva end, bool clear)
    {
        if (pages.Count > PerPageRowLimit)
        {
            Host(NotifierTraceKind.HostPteChange, start, end, $"{pages.Count} PTEs {(clear ? "cleared" : "write-protected")}");
        }

        foreach (var page in pages)
        {
            var pfn = FrameOf(page);
            var pte = clear ? HostPte.None : HostPte.Present(pfn, HostPte.UserBit | HostPte.AccessedBit);
            if (pages.Count <= PerPageRowLimit)
            {
                var label = clear ? $"PTE cleared, was {pfn}" : $"PTE now read-only: {pte}";
                _recorder.RecordHost(NotifierTraceKind.HostPteChange, MmId, PageAt(page), PageAt(page + 1), pfn, pte, label);
            }

            _mapped[page] = !clear;
        }
    }

    private void FreeFrames(List<int> pages, Hva start, Hva end)
    {
        if (pages.Count > PerPageRowLimit)
        {
            Host(NotifierTraceKind.FrameFree, start, end, $"{pages.Count} frames freed");
            return;
        }

        foreach (var page in pages)
        {
            Host(NotifierTraceKind.FrameFree, PageAt(page), PageAt(page + 1), $"{FrameOf(page)} freed", FrameOf(page));
        }
    }

    private void Host(NotifierTraceKind kind, Hva start, Hva end, string label, Pfn pfn = default) =>
        _recorder.RecordHost(kind, MmId, start, end, pfn, label: label);

    private void Note(string label, Hva start, Hva end)
    {
        _scriptLog.LogInformation("{Step} {Range}", label, NotifierDemoReport.FormatRange(start, end));
        _recorder.RecordHost(NotifierTraceKind.Mark, MmId, start, end, label: label);
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

    private static Hva Max(Hva a, Hva b) => a > b ? a : b;

    private static Hva Min(Hva a, Hva b) => a < b ? a : b;
}
