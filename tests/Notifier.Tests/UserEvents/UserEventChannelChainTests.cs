using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Notifier.Tests.UserEvents;

/// <summary>The channel as the host sees it: opened on an mm's chain and driven by the chain's start/end.</summary>
public sealed class UserEventChannelChainTests
{
    private static Hva P(ulong page) => new(page * Paging.PageSize);

    private static void Invalidate(TestMm mm, ulong startPage, ulong endPage, bool blockable = true)
    {
        var range = new NotifierRange(mm, P(startPage), P(endPage), NotifierEvent.Unmap, blockable);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.True);
        mm.Notifiers.InvalidateRangeEnd(ref range);
    }

    private static UserEvent[] ReadAll(UserEventChannel channel)
    {
        var buffer = new UserEvent[16];
        return buffer[..channel.Read(buffer)];
    }

    [Test]
    public void Open_ListsTheChannelWithOnlyTheStartOp()
    {
        var mm = new TestMm();
        using var channel = UserEventChannel.Open(mm);

        Assert.That(mm.Notifiers.SubscriberCount, Is.EqualTo(1));
        var subscription = mm.Notifiers.Subscribers[0];
        Assert.That(subscription.Notifier, Is.SameAs(channel));
        Assert.That(subscription.Ops, Is.EqualTo(MmuNotifierOps.InvalidateRangeStart));
        Assert.That(channel.Mm, Is.SameAs(mm));
    }

    [Test]
    public void StartsThroughTheChain_AreCoalescedAndRead()
    {
        var mm = new TestMm();
        using var channel = UserEventChannel.Open(mm);
        channel.RegisterRegion(1, P(10), P(20));
        channel.RegisterRegion(2, P(30), P(40));

        Invalidate(mm, 12, 14);
        Invalidate(mm, 35, 36, blockable: false);
        Invalidate(mm, 15, 16);
        Invalidate(mm, 50, 60);

        Assert.That(ReadAll(channel), Is.EqualTo(new[]
        {
            new UserEvent(UserEventType.Invalidate, UserEventFlags.None, P(10), P(20), 1),
            new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, P(35), P(36), 2),
            new UserEvent(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, 3),
        }));
    }

    [Test]
    public async Task WaitAsync_IsWokenByAChainStart()
    {
        var mm = new TestMm();
        using var channel = UserEventChannel.Open(mm);
        channel.RegisterRegion(1, P(10), P(20));
        var wait = channel.WaitAsync().AsTask();
        Assert.That(wait.IsCompleted, Is.False);

        Invalidate(mm, 0, 100);

        Assert.That(await wait.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public void Dispose_UnlistsTheChannel_SoLaterStartsDoNotReachIt()
    {
        var mm = new TestMm();
        var channel = UserEventChannel.Open(mm);
        channel.RegisterRegion(1, P(10), P(20));
        ref readonly var counter = ref channel.GenerationRef;
        Invalidate(mm, 10, 11);

        channel.Dispose();
        channel.Dispose();

        Assert.That(mm.Notifiers.SubscriberCount, Is.Zero);
        Invalidate(mm, 10, 11);
        Assert.That(Volatile.Read(in counter), Is.EqualTo(1));
    }

    [Test]
    public void RegionsAndPendingEvents_OutliveTheMmsExit_AndDisposeStillWorks()
    {
        var mm = new TestMm();
        var channel = UserEventChannel.Open(mm);
        channel.RegisterRegion(1, P(10), P(20));
        Invalidate(mm, 10, 11);

        mm.Notifiers.Release();

        Assert.That(mm.Notifiers.SubscriberCount, Is.Zero);
        Assert.That(channel.Stats.Regions, Is.EqualTo(1));
        Assert.That(ReadAll(channel), Is.EqualTo(new[]
        {
            new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, P(10), P(11), 1),
            new UserEvent(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, 1),
        }));

        Assert.DoesNotThrow(channel.Dispose);
        Assert.DoesNotThrow(channel.Dispose);
        Assert.Throws<ObjectDisposedException>(() => channel.Read(new UserEvent[1]));
    }

    [Test]
    public void Open_OnAnExitedMm_Throws()
    {
        var mm = new TestMm();
        mm.Notifiers.Release();

        Assert.Throws<MmExitedException>(() => UserEventChannel.Open(mm));
    }

    [Test]
    public void Open_WithNullMm_Throws() =>
        Assert.Throws<ArgumentNullException>(() => UserEventChannel.Open(null!));

    [Test]
    public void TwoChannelsOnOneMm_AreIndependent()
    {
        var mm = new TestMm();
        using var first = UserEventChannel.Open(mm);
        using var second = UserEventChannel.Open(mm);
        first.RegisterRegion(1, P(10), P(20));
        second.RegisterRegion(1, P(30), P(40));

        Invalidate(mm, 30, 31);

        Assert.That((first.Generation, second.Generation), Is.EqualTo((0UL, 1UL)));
        Assert.That(ReadAll(first), Is.Empty);
        Assert.That(ReadAll(second), Has.Length.EqualTo(2));
    }
}
