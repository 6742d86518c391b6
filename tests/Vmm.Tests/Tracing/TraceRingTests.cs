using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>
/// <see cref="TraceRing"/>: once full it keeps the newest events and counts the rest as dropped; several threads
/// recording at once lose nothing that fits, and each thread's events come back in the order it recorded them.
/// </summary>
public sealed class TraceRingTests
{
    private static readonly TraceEventType Kind = new("test", "test", TracePhase.Instant, ["thread", "index"]);

    [Test]
    public void ARingThatWrapsKeepsTheNewestEventsInOrderAndCountsTheDropped()
    {
        var ring = new TraceRing(8);
        for (var i = 0; i < 21; i++)
        {
            ring.Record(new TraceEvent { Type = Kind, Arg1 = i });
        }

        var snapshot = ring.Snapshot();

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.Events.Select(e => e.Arg1), Is.EqualTo(Enumerable.Range(13, 8).Select(i => (long)i)));
            Assert.That(snapshot.Recorded, Is.EqualTo(21));
            Assert.That(snapshot.Dropped, Is.EqualTo(13));
            Assert.That(snapshot.Capacity, Is.EqualTo(8));
        });
    }

    [Test]
    public void ARingNotYetFullKeepsEverything()
    {
        var ring = new TraceRing(8);
        ring.Record(new TraceEvent { Type = Kind, Arg1 = 1 });
        ring.Record(new TraceEvent { Type = Kind, Arg1 = 2 });

        var snapshot = ring.Snapshot();

        Assert.That(snapshot.Events.Select(e => e.Arg1), Is.EqualTo(new long[] { 1, 2 }));
        Assert.That(snapshot.Dropped, Is.Zero);
    }

    [TestCase(1 << 20, TraceRing.DefaultChunkSize, Description = "room for all")]
    [TestCase(1000, TraceRing.DefaultChunkSize, Description = "wraps many times")]
    [TestCase(1 << 20, 1000, Description = "room for all, threads allocating chunks at once")]
    [TestCase(1000, 7, Description = "wraps many times over chunks of 7 and a last one of 6")]
    public void ThreadsRecordingAtOnceKeepEachThreadsOrder(int capacity, int chunkSize)
    {
        const int threads = 4;
        const int perThread = 50_000;
        var ring = new TraceRing(capacity, chunkSize);
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < perThread; i++)
            {
                ring.Record(new TraceEvent { Type = Kind, Arg0 = t, Arg1 = i, Tid = t });
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        var snapshot = ring.Snapshot();

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.Recorded, Is.EqualTo(threads * perThread));
            Assert.That(snapshot.Events.Count + snapshot.Dropped, Is.EqualTo(snapshot.Recorded));
            Assert.That(snapshot.Events, Has.Count.LessThanOrEqualTo(capacity));
            if (capacity >= threads * perThread)
            {
                Assert.That(snapshot.Dropped, Is.Zero);
            }

            foreach (var group in snapshot.Events.GroupBy(e => e.Arg0))
            {
                var indices = group.Select(e => e.Arg1).ToList();
                Assert.That(indices, Is.Ordered.Ascending.And.Unique, $"thread {group.Key}");
                Assert.That(group.All(e => e.Tid == group.Key && e.Type == Kind), Is.True, "no event mixes two writers' fields");
            }
        });
    }

    [Test]
    public void ARingAllocatesItsSlotsAChunkAtATimeAsItFills()
    {
        var ring = new TraceRing(100, chunkSize: 16);
        var allocated = new List<long> { ring.AllocatedSlots };
        foreach (var count in new[] { 1, 39, 160 })
        {
            for (var i = 0; i < count; i++)
            {
                ring.Record(new TraceEvent { Type = Kind, Arg1 = ring.Recorded });
            }

            allocated.Add(ring.AllocatedSlots);
        }

        var snapshot = ring.Snapshot();

        Assert.Multiple(() =>
        {
            Assert.That(allocated, Is.EqualTo(new long[] { 0, 16, 48, 100 }), "nothing up front, then a chunk as each is first reached, the last one 4 long");
            Assert.That(snapshot.Events.Select(e => e.Arg1), Is.EqualTo(Enumerable.Range(100, 100).Select(i => (long)i)));
            Assert.That(snapshot.Dropped, Is.EqualTo(100));
        });
    }

    [Test]
    public void ADefaultRecorderOfAShortRunAllocatesOneChunkNotItsWholeCapacity()
    {
        var recorder = new TraceRecorder();
        for (var i = 0; i < 1000; i++)
        {
            recorder.Instant(Kind, TraceRecorder.HostPid, i);
        }

        Assert.Multiple(() =>
        {
            Assert.That(recorder.Capacity, Is.EqualTo(TraceRecorder.DefaultCapacity));
            Assert.That(recorder.AllocatedEvents, Is.EqualTo(TraceRing.DefaultChunkSize));
            Assert.That(recorder.Snapshot().Events, Has.Count.EqualTo(1000));
        });
    }

    [Test]
    public void ARecorderRefusesASizeOutOfRange()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new TraceRecorder(TraceRecorder.MinCapacity - 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new TraceRecorder(TraceRecorder.MaxCapacity + 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }
}
