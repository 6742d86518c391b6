using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class ConcurrencyTests
{
    private const int Threads = 4;
    private const int OpsPerThread = 20_000;
    private const int MaxHeldPerThread = 1500;

    [Test]
    public void SeededAllocFreeStress_EndsWithEveryFrameFreeAndCountsConsistent()
    {
        using var memory = TestMemory.Create(audit: true);
        var observer = new RecordingObserver(memory);
        memory.Observer = observer;
        var failures = new ConcurrentQueue<Exception>();
        var allocations = new long[Threads];
        using var start = new Barrier(Threads);

        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                allocations[t] = Run(memory, t);
            }
            catch (Exception ex)
            {
                failures.Enqueue(ex);
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());

        Assert.That(failures, Is.Empty);
        var stats = memory.GetStats();
        Assert.That(stats.FreeFrames, Is.EqualTo(memory.TotalFrames));
        Assert.That(stats.FreeFramesPerNode, Is.EqualTo(new long[] { 8192, 8192 }));
        Assert.That(stats.Allocations, Is.EqualTo(allocations.Sum()));
        Assert.That(stats.Frees, Is.EqualTo(stats.Allocations));
        Assert.That(stats.UseAfterFreeDetections, Is.Zero);
        Assert.That(observer.Freed, Has.Count.EqualTo(stats.Frees));
        for (ulong value = 0; value < (ulong)memory.TotalFrames; value++)
        {
            ref var frame = ref memory.Frame(new Pfn(value));
            if (!frame.IsFree || frame.RefCount != 0 || frame.MapCount != 0)
            {
                Assert.Fail($"{new Pfn(value)} ended as {frame.Flags}, refcount {frame.RefCount}, mapcount {frame.MapCount}");
            }
        }

        // The free lists are intact: draining each node exactly hands out its own frames once.
        for (var node = 0; node < memory.NodeCount; node++)
        {
            var info = memory.GetNode(node);
            var seen = new HashSet<Pfn>();
            while (memory.TryAllocate(node, AllocationFlags.ExactNode, out var pfn))
            {
                Assert.That(info.Contains(pfn) && seen.Add(pfn), Is.True, $"{pfn} on node {node}'s list");
            }

            Assert.That(seen, Has.Count.EqualTo(info.FrameCount));
        }
    }

    private static long Run(HostMemory memory, int thread)
    {
        var random = new Random(1000 + thread);
        var held = new List<(Pfn Pfn, long Stamp)>();
        long allocations = 0;
        for (var op = 0; op < OpsPerThread; op++)
        {
            var choice = random.Next(10);
            if (held.Count == 0 || (choice < 5 && held.Count < MaxHeldPerThread))
            {
                var flags = random.Next(2) == 0 ? AllocationFlags.Zero : AllocationFlags.None;
                if (random.Next(4) == 0)
                {
                    flags |= AllocationFlags.ExactNode;
                }

                var pfn = memory.Allocate(random.Next(memory.NodeCount), flags);
                allocations++;
                ref var frame = ref memory.Frame(pfn);
                if (frame.RefCount != 1 || frame.MapCount != 0 || frame.IsFree)
                {
                    throw new InvalidOperationException($"{pfn} handed out as {frame.Flags}, refcount {frame.RefCount}");
                }

                var bytes = memory.FrameBytes(pfn);
                if ((flags & AllocationFlags.Zero) != 0 && bytes.ContainsAnyExcept((byte)0))
                {
                    throw new InvalidOperationException($"{pfn} was not zeroed");
                }

                // The stamp shows whether anyone else got the same frame while we held it.
                var stamp = ((long)thread << 32) | (uint)op;
                BitConverter.TryWriteBytes(bytes[..8], stamp);
                BitConverter.TryWriteBytes(bytes[4088..], stamp);
                held.Add((pfn, stamp));
            }
            else if (choice < 7)
            {
                var (pfn, _) = held[random.Next(held.Count)];
                if (!memory.TryGet(pfn))
                {
                    throw new InvalidOperationException($"TryGet failed on held {pfn}");
                }

                memory.IncrementMapCount(pfn);
                memory.DecrementMapCount(pfn);
                if (memory.Put(pfn))
                {
                    throw new InvalidOperationException($"Put of an extra reference freed {pfn}");
                }
            }
            else
            {
                var index = random.Next(held.Count);
                var (pfn, stamp) = held[index];
                held[index] = held[^1];
                held.RemoveAt(held.Count - 1);
                Release(memory, pfn, stamp, random.Next(2) == 0);
            }
        }

        foreach (var (pfn, stamp) in held)
        {
            Release(memory, pfn, stamp, useFree: false);
        }

        return allocations;
    }

    private static void Release(HostMemory memory, Pfn pfn, long stamp, bool useFree)
    {
        var bytes = memory.FrameBytes(pfn);
        if (BitConverter.ToInt64(bytes[..8]) != stamp || BitConverter.ToInt64(bytes[4088..]) != stamp)
        {
            throw new InvalidOperationException($"{pfn} was written by someone else while held");
        }

        if (useFree)
        {
            memory.Free(pfn);
        }
        else if (!memory.Put(pfn))
        {
            throw new InvalidOperationException($"last Put of {pfn} did not free it");
        }
    }
}
