using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

/// <summary>
/// A speculative reference (<see cref="HostMemory.TryGet"/>, as reclaim isolating an LRU frame or a pfn scanner takes
/// one) that sets its own flags while it holds the frame never makes the owner's last-looking <see cref="HostMemory.Put"/>
/// report a bad page state: the free check runs only once the count really reached 0.
/// </summary>
public sealed class SpeculativeReferenceTests
{
    [Test]
    public void An_owner_put_racing_a_speculative_reference_that_sets_flags_never_throws()
    {
        using var memory = TestMemory.Create(audit: false);
        var failures = new ConcurrentQueue<Exception>();
        long published = -1;
        var done = 0;
        using var start = new Barrier(2);

        var owner = new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                for (var i = 0; i < 400_000 && failures.IsEmpty; i++)
                {
                    var pfn = memory.Allocate(0);
                    Volatile.Write(ref published, (long)pfn.Value);
                    Thread.SpinWait(i % 16);
                    memory.Put(pfn);
                }
            }
            catch (Exception e)
            {
                failures.Enqueue(e);
            }
            finally
            {
                Volatile.Write(ref done, 1);
            }
        });
        var scanner = new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                while (Volatile.Read(ref done) == 0)
                {
                    var seen = Volatile.Read(ref published);
                    if (seen >= 0 && memory.TryGet(new Pfn((ulong)seen)))
                    {
                        memory.SetFlags(new Pfn((ulong)seen), FrameFlags.Isolated);
                        memory.ClearFlags(new Pfn((ulong)seen), FrameFlags.Isolated);
                        memory.Put(new Pfn((ulong)seen));
                    }
                }
            }
            catch (Exception e)
            {
                failures.Enqueue(e);
            }
        });

        owner.Start();
        scanner.Start();
        owner.Join();
        scanner.Join();

        Assert.That(failures, Is.Empty, string.Join(Environment.NewLine, failures.Take(3)));
        Assert.That(memory.FreeFrames, Is.EqualTo(memory.TotalFrames));
    }
}
