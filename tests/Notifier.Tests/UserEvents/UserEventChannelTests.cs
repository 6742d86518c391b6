using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Notifier.Tests.UserEvents;

/// <summary>The channel's own logic, driven by calling its start callback directly (no chain involved).</summary>
public sealed class UserEventChannelTests
{
    private TestMm _mm = null!;
    private UserEventChannel _channel = null!;

    private static Hva P(ulong page) => new(page * Paging.PageSize);

    [SetUp]
    public void SetUp()
    {
        _mm = new TestMm();
        _channel = UserEventChannel.CreateDetached(_mm);
    }

    [TearDown]
    public void TearDown() => _channel.Dispose();

    private bool Start(ulong startPage, ulong endPage, bool blockable = true) =>
        ((IMmuNotifier)_channel).InvalidateRangeStart(new NotifierRange(_mm, P(startPage), P(endPage), NotifierEvent.Unmap, blockable));

    private UserEvent[] ReadAll(int bufferLength = 16)
    {
        var buffer = new UserEvent[bufferLength];
        var count = _channel.Read(buffer);
        return buffer[..count];
    }

    private static UserEvent Hinted(ulong cookie, ulong startPage, ulong endPage) =>
        new(UserEventType.Invalidate, UserEventFlags.Hint, P(startPage), P(endPage), cookie);

    private static UserEvent Whole(ulong cookie, ulong startPage, ulong endPage) =>
        new(UserEventType.Invalidate, UserEventFlags.None, P(startPage), P(endPage), cookie);

    private static UserEvent Last(ulong counter) => new(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, counter);

    [TestCase(5ul, 12ul, 10ul, 12ul)]
    [TestCase(12ul, 14ul, 12ul, 14ul)]
    [TestCase(18ul, 40ul, 18ul, 20ul)]
    [TestCase(0ul, 100ul, 10ul, 20ul)]
    public void FirstHit_QueuesOneEventWithTheHintClippedToTheRegion(ulong startPage, ulong endPage, ulong hintStart, ulong hintEnd)
    {
        _channel.RegisterRegion(7, P(10), P(20));

        Assert.That(Start(startPage, endPage), Is.True);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(7, hintStart, hintEnd), Last(1) }));
    }

    [Test]
    public void SecondHitBeforeRead_CoalescesIntoOneEventForTheWholeRegion()
    {
        _channel.RegisterRegion(7, P(10), P(20));

        Start(11, 12);
        Start(15, 16);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Whole(7, 10, 20), Last(2) }));
        var stats = _channel.Stats;
        Assert.That((stats.HitsCoalesced, stats.RegionHits, stats.EventsDelivered), Is.EqualTo((1L, 2L, 1L)));
    }

    [Test]
    public void Generation_CountsOnlyStartsThatHitARegion_OncePerStart()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(15), P(30));

        Start(0, 10);   // ends exactly where region 1 starts: no overlap
        Start(30, 40);  // starts exactly where region 2 ends: no overlap
        Assert.That(_channel.Generation, Is.Zero);

        Start(16, 17);  // hits both regions, counts once
        Assert.That(_channel.Generation, Is.EqualTo(1));

        Start(9, 11);   // hits region 1 again (coalesced), still counts
        Assert.That(_channel.Generation, Is.EqualTo(2));

        Start(100, 200);
        var stats = _channel.Stats;
        Assert.That((stats.Generation, stats.RangeStarts, stats.RegionHits), Is.EqualTo((2UL, 5L, 3L)));
    }

    [Test]
    public void OneStartOverTwoRegions_ReportsBothOldestFirst_ThenLastWithTheCounter()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(30), P(40));
        _channel.RegisterRegion(3, P(50), P(60));

        Start(55, 56);
        Start(0, 35);

        Assert.That(ReadAll(), Is.EqualTo(new[]
        {
            Hinted(3, 55, 56),
            Hinted(1, 10, 20),
            Hinted(2, 30, 35),
            Last(2),
        }));
    }

    [Test]
    public void Read_WithNothingPending_ReturnsZeroAndNoLastEvent()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Assert.That(_channel.Read(new UserEvent[4]), Is.Zero);
        Assert.That(_channel.HasPendingEvents, Is.False);

        Start(10, 11);
        Assert.That(_channel.HasPendingEvents, Is.True);
        Assert.That(ReadAll(), Has.Length.EqualTo(2));
        Assert.That(_channel.HasPendingEvents, Is.False);
        Assert.That(_channel.Read(new UserEvent[4]), Is.Zero);
    }

    [Test]
    public void Read_RearmsTheRegion_SoTheNextHitQueuesAFreshHintedEvent()
    {
        _channel.RegisterRegion(7, P(10), P(20));
        Start(10, 11);
        Start(12, 13);
        Assert.That(ReadAll(), Is.EqualTo(new[] { Whole(7, 10, 20), Last(2) }));

        Start(14, 15);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(7, 14, 15), Last(3) }));
    }

    [Test]
    public void SmallBuffers_DeliverEveryEventInOrder_AndTheLastEventComesNext()
    {
        for (ulong cookie = 1; cookie <= 3; cookie++)
        {
            _channel.RegisterRegion(cookie, P(cookie * 10), P((cookie * 10) + 5));
        }

        Start(30, 31);
        Start(10, 11);
        Start(20, 21);

        Assert.That(ReadAll(1), Is.EqualTo(new[] { Hinted(3, 30, 31) }));
        Assert.That(ReadAll(1), Is.EqualTo(new[] { Hinted(1, 10, 11) }));
        Assert.That(ReadAll(1), Is.EqualTo(new[] { Hinted(2, 20, 21) }));
        Assert.That(_channel.HasPendingEvents, Is.True, "the Last event is owed");
        Assert.That(ReadAll(1), Is.EqualTo(new[] { Last(3) }));
        Assert.That(_channel.HasPendingEvents, Is.False);
        Assert.That(ReadAll(1), Is.Empty);
        Assert.That(_channel.Stats.LastEventsDelivered, Is.EqualTo(1));
    }

    [Test]
    public void BufferExactlyFullOfInvalidates_DefersTheLastEvent()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(30), P(40));
        Start(0, 100);

        Assert.That(ReadAll(2), Is.EqualTo(new[] { Hinted(1, 10, 20), Hinted(2, 30, 40) }));
        Assert.That(ReadAll(2), Is.EqualTo(new[] { Last(1) }));
    }

    [Test]
    public void OwedLastEvent_IsSentOnceAfterEventsThatArrivedMeanwhile()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(30), P(40));
        Start(10, 11);
        Assert.That(ReadAll(1), Is.EqualTo(new[] { Hinted(1, 10, 11) }));

        Start(30, 31);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(2, 30, 31), Last(2) }));
        Assert.That(ReadAll(), Is.Empty);
    }

    [Test]
    public void EmptyBuffer_ThrowsArgumentExceptionNamingTheLength()
    {
        var ex = Assert.Throws<ArgumentException>(() => _channel.Read(Span<UserEvent>.Empty));
        Assert.That(ex!.Message, Does.Contain("buffer length 0").And.Contain("at least one event"));
        Assert.That(ex.ParamName, Is.EqualTo("buffer"));
    }

    [Test]
    public void UnregisterRegion_DropsItsPendingEvent_AndItIsNoLongerHit()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(30), P(40));
        Start(0, 100);

        _channel.UnregisterRegion(1);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(2, 30, 40), Last(1) }));
        Start(10, 20);
        Assert.That(_channel.Generation, Is.EqualTo(1));
        Assert.That(ReadAll(), Is.Empty);
        Assert.That(_channel.Stats.Regions, Is.EqualTo(1));
    }

    [Test]
    public void UnregisterRegion_OfTheOnlyPendingEvent_LeavesNothingToRead()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Start(10, 11);

        _channel.UnregisterRegion(1);

        Assert.That(_channel.HasPendingEvents, Is.False);
        Assert.That(ReadAll(), Is.Empty);
        Assert.That(_channel.Stats.PendingEvents, Is.Zero);
    }

    [Test]
    public void UnregisteredCookie_CanBeRegisteredAgain()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.UnregisterRegion(1);
        _channel.RegisterRegion(1, P(50), P(60));

        Start(10, 20);
        Start(55, 56);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(1, 55, 56), Last(1) }));
    }

    [Test]
    public void DuplicateCookie_ThrowsNamingTheCookie_AndKeepsTheFirstRegion()
    {
        _channel.RegisterRegion(42, P(10), P(20));

        var ex = Assert.Throws<DuplicateCookieException>(() => _channel.RegisterRegion(42, P(30), P(40)));

        Assert.That(ex!.Message, Does.Contain("cookie 42").And.Contain("already registered"));
        Assert.That(ex.Cookie, Is.EqualTo(42));
        Assert.That(ex, Is.InstanceOf<ArgumentException>());
        Assert.That(_channel.Stats.Regions, Is.EqualTo(1));
        Start(30, 40);
        Assert.That(ReadAll(), Is.Empty, "the rejected region must not have been inserted");
        Start(10, 11);
        Assert.That(ReadAll()[0], Is.EqualTo(Hinted(42, 10, 11)));
    }

    [Test]
    public void UnknownCookie_ThrowsKeyNotFoundNamingTheCookie()
    {
        _channel.RegisterRegion(1, P(10), P(20));

        var ex = Assert.Throws<UnknownCookieException>(() => _channel.UnregisterRegion(0xdead));

        Assert.That(ex!.Message, Does.Contain("cookie 57005").And.Contain("0xdead").And.Contain("not registered"));
        Assert.That(ex, Is.InstanceOf<KeyNotFoundException>());
        Assert.That(ex.Cookie, Is.EqualTo(0xdead));

        _channel.UnregisterRegion(1);
        Assert.Throws<UnknownCookieException>(() => _channel.UnregisterRegion(1));
    }

    [Test]
    public void RegisterRegion_RejectsBadRanges()
    {
        Assert.Throws<InvalidRangeException>(() => _channel.RegisterRegion(1, P(10), P(10)));
        Assert.Throws<InvalidRangeException>(() => _channel.RegisterRegion(1, P(10), P(5)));
        var unaligned = Assert.Throws<InvalidRangeException>(() => _channel.RegisterRegion(1, P(10) + 1, P(20)));
        Assert.That(unaligned!.Message, Does.Contain("not page-aligned"));
        Assert.Throws<InvalidRangeException>(() => _channel.RegisterRegion(1, P(10), Hva.AddressSpaceEnd + Paging.PageSize));
        Assert.That(_channel.Stats.Regions, Is.Zero);
    }

    [Test]
    public void OverlappingRegions_AreEachReported()
    {
        _channel.RegisterRegion(1, P(10), P(30));
        _channel.RegisterRegion(2, P(20), P(40));
        _channel.RegisterRegion(3, P(20), P(40));

        Start(25, 26);

        Assert.That(ReadAll(), Is.EqualTo(new[] { Hinted(1, 25, 26), Hinted(2, 25, 26), Hinted(3, 25, 26), Last(1) }));
    }

    [Test]
    public void RegionAtTheTopOfTheAddressSpace_IsHitByAWholeMmRange()
    {
        var top = Hva.AddressSpaceEnd - Paging.PageSize;
        _channel.RegisterRegion(9, top, Hva.AddressSpaceEnd);

        ((IMmuNotifier)_channel).InvalidateRangeStart(new NotifierRange(_mm, Hva.Zero, Hva.AddressSpaceEnd, NotifierEvent.Release));

        Assert.That(ReadAll(), Is.EqualTo(new[]
        {
            new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, top, Hva.AddressSpaceEnd, 9),
            Last(1),
        }));
    }

    [Test]
    public void Start_SucceedsOnNonBlockableRanges()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Assert.That(Start(10, 11, blockable: false), Is.True);
        Assert.That(_channel.Generation, Is.EqualTo(1));
    }

    [Test]
    public void GenerationRef_CanBePolledWithoutACall()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        ref readonly var counter = ref _channel.GenerationRef;
        var seen = Volatile.Read(in counter);

        Start(10, 11);

        Assert.That(Volatile.Read(in counter), Is.EqualTo(seen + 1));
        Assert.That(ReadAll()[^1], Is.EqualTo(Last(Volatile.Read(in counter))));
    }

    [Test]
    public async Task WaitAsync_CompletesAtOnceWhenAnEventIsPending()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Start(10, 11);

        var wait = _channel.WaitAsync(CancellationToken.None);

        Assert.That(wait.IsCompletedSuccessfully, Is.True);
        Assert.That(await wait, Is.True);
    }

    [Test]
    public async Task WaitAsync_IsWokenByAHit_NotByAMiss()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        var wait = _channel.WaitAsync(CancellationToken.None).AsTask();
        Assert.That(wait.IsCompleted, Is.False);

        // A hit completes the waiter inside the start callback, before Start returns; a miss must not.
        Assert.That(Start(30, 40), Is.True);
        Assert.That(_channel.Stats.RangeStarts, Is.EqualTo(1), "the miss reached the channel");
        Assert.That(_channel.Generation, Is.Zero);
        Assert.That(wait.IsCompleted, Is.False, "a start that hit no region must not wake the reader");

        Start(15, 16);
        Assert.That(await wait.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public async Task WaitAsync_AfterAFullDrain_WaitsAgain()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Start(10, 11);
        Assert.That(await _channel.WaitAsync(), Is.True);
        ReadAll();

        var wait = _channel.WaitAsync().AsTask();
        Assert.That(wait.IsCompleted, Is.False);
        Start(10, 11);
        Assert.That(await wait.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public void WaitAsync_CanBeCancelled()
    {
        using var cts = new CancellationTokenSource();
        var wait = _channel.WaitAsync(cts.Token).AsTask();
        Assert.That(wait.IsCompleted, Is.False);

        cts.Cancel();

        Assert.CatchAsync<OperationCanceledException>(async () => await wait);
        var already = _channel.WaitAsync(cts.Token);
        Assert.That(already.IsCanceled, Is.True, "an already-cancelled token cancels at once");
    }

    [Test]
    public async Task WaitAsync_CancellingOneWaiter_LeavesOthersWaiting()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        using var cts = new CancellationTokenSource();
        var cancelled = _channel.WaitAsync(cts.Token).AsTask();
        var other = _channel.WaitAsync(CancellationToken.None).AsTask();

        cts.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await cancelled);
        Assert.That(other.IsCompleted, Is.False);

        Start(10, 11);
        Assert.That(await other.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public async Task Dispose_CompletesWaitersWithFalse()
    {
        var wait = _channel.WaitAsync(CancellationToken.None).AsTask();

        _channel.Dispose();

        Assert.That(await wait.WaitAsync(TimeSpan.FromSeconds(5)), Is.False);
        Assert.That(await _channel.WaitAsync(), Is.False, "a wait issued after dispose also answers false");
    }

    [Test]
    public void Dispose_MakesEveryOtherMemberThrow_AndIsIdempotent()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        Start(10, 11);

        _channel.Dispose();
        _channel.Dispose();

        Assert.Throws<ObjectDisposedException>(() => _channel.Read(new UserEvent[4]));
        Assert.Throws<ObjectDisposedException>(() => _channel.RegisterRegion(2, P(30), P(40)));
        Assert.Throws<ObjectDisposedException>(() => _channel.UnregisterRegion(1));
        Assert.Throws<ObjectDisposedException>(() => _ = _channel.Generation);
        Assert.Throws<ObjectDisposedException>(() => _ = _channel.GenerationRef);
        Assert.Throws<ObjectDisposedException>(() => _ = _channel.HasPendingEvents);
        Assert.Throws<ObjectDisposedException>(() => _ = _channel.Stats);
    }

    [Test]
    public void StartAfterDispose_IsIgnored()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        ref readonly var counter = ref _channel.GenerationRef;
        _channel.Dispose();

        Assert.That(Start(10, 11), Is.True);
        Assert.That(Volatile.Read(in counter), Is.Zero);
    }

    [Test]
    public void Stats_TrackRegionsPendingAndDeliveries()
    {
        _channel.RegisterRegion(1, P(10), P(20));
        _channel.RegisterRegion(2, P(30), P(40));
        Start(10, 11);
        Start(12, 13);
        Start(35, 36);

        var before = _channel.Stats;
        ReadAll();
        var after = _channel.Stats;

        Assert.That(before, Is.EqualTo(new UserEventChannelStats
        {
            Regions = 2,
            PendingEvents = 2,
            Generation = 3,
            RangeStarts = 3,
            RegionHits = 3,
            HitsCoalesced = 1,
        }));
        Assert.That(after, Is.EqualTo(before with { PendingEvents = 0, EventsDelivered = 2, LastEventsDelivered = 1 }));
    }

    [Test]
    public void HotPath_DoesNotAllocate()
    {
        for (ulong cookie = 0; cookie < 64; cookie++)
        {
            _channel.RegisterRegion(cookie, P(cookie * 10), P((cookie * 10) + 8));
        }

        var notifier = (IMmuNotifier)_channel;
        var ranges = Enumerable.Range(0, 100).Select(i => new NotifierRange(_mm, P((ulong)i * 5), P(((ulong)i * 5) + 12), NotifierEvent.Clear)).ToArray();
        var buffer = new UserEvent[128];

        void Drive()
        {
            foreach (var range in ranges)
            {
                notifier.InvalidateRangeStart(in range);
            }

            _channel.Read(buffer);
        }

        Drive();
        var before = GC.GetAllocatedBytesForCurrentThread();
        Drive();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
        Assert.That(_channel.Generation, Is.EqualTo(200));
    }
}
