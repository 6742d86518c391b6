using Hypervisor.Notifier.Srcu;
using Hypervisor.Notifier.Tests.Support;

namespace Hypervisor.Notifier.Tests.Srcu;

public class SrcuDomainTests
{
    [Test]
    public void SynchronizeWithNoReadersReturnsAndCountsAGracePeriod()
    {
        var domain = new SrcuDomain();
        domain.Synchronize();
        domain.Synchronize();
        Assert.That(domain.GracePeriods, Is.EqualTo(2));
    }

    [Test]
    public void SynchronizeWaitsForAReaderThatBeganBeforeIt()
    {
        var domain = new SrcuDomain();
        var token = domain.ReadLock();
        var epoch = domain.Epoch;
        var synchronize = Task.Run(domain.Synchronize);
        Assert.That(Reached.GracePeriodBegan(domain, epoch), Is.True, "the writer flipped the epoch and waits");
        Assert.That(synchronize.IsCompleted, Is.False, "the reader is still inside");
        Assert.That(domain.GracePeriods, Is.Zero);

        domain.ReadUnlock(token);
        Assert.That(synchronize.Wait(Reached.Bound), Is.True);
        Assert.That(domain.GracePeriods, Is.EqualTo(1));
    }

    [Test]
    public void NestedSectionsAreAllWaitedFor()
    {
        var domain = new SrcuDomain();
        var outer = domain.ReadLock();
        var inner = domain.ReadLock();
        domain.ReadUnlock(inner);
        var epoch = domain.Epoch;
        var synchronize = Task.Run(domain.Synchronize);
        Assert.That(Reached.GracePeriodBegan(domain, epoch), Is.True);
        Assert.That(synchronize.IsCompleted, Is.False, "the outer section is still open after the inner one closed");
        Assert.That(domain.GracePeriods, Is.Zero);

        domain.ReadUnlock(outer);
        Assert.That(synchronize.Wait(Reached.Bound), Is.True);
    }

    [Test]
    public void ReaderThatBeginsAfterAFlipDoesNotHoldUpThatSynchronize()
    {
        var domain = new SrcuDomain();
        var early = domain.ReadLock();
        var epoch = domain.Epoch;
        var synchronize = Task.Factory.StartNew(domain.Synchronize, TaskCreationOptions.LongRunning);
        Assert.That(SpinWait.SpinUntil(() => domain.Epoch != epoch, TimeSpan.FromSeconds(10)), Is.True, "the writer flipped");
        var late = domain.ReadLock(); // begins after the flip
        domain.ReadUnlock(early);
        Assert.That(synchronize.Wait(TimeSpan.FromSeconds(10)), Is.True, "only pre-existing readers are waited for");
        domain.ReadUnlock(late);
    }

    [Test]
    public void CallbacksRunAfterAGracePeriodAndBarrierWaitsForThem()
    {
        var domain = new SrcuDomain();
        var token = domain.ReadLock();
        var ran = 0;
        var epoch = domain.Epoch;
        domain.CallAfterGracePeriod(() => Interlocked.Increment(ref ran));
        Assert.That(Reached.GracePeriodBegan(domain, epoch), Is.True, "the callback's grace period began and waits for the reader");
        Assert.That(Volatile.Read(ref ran), Is.Zero, "a reader is still inside");
        Assert.That(domain.PendingCallbacks, Is.EqualTo(1));
        domain.ReadUnlock(token);
        domain.Barrier();
        Assert.That(Volatile.Read(ref ran), Is.EqualTo(1));
        Assert.That(domain.PendingCallbacks, Is.Zero);
    }

    /// <summary>
    /// The RCU publish/retire pattern: writers replace a shared object, synchronize, then poison the old one.
    /// A reader must never observe poison in an object it picked up inside its section.
    /// </summary>
    [Test]
    public void ReadersNeverSeeAnObjectRetiredAfterTheirSectionBegan([Values(1, 7)] int seed)
    {
        var domain = new SrcuDomain();
        var current = new Box();
        var stop = false;
        var violations = 0;
        long reads = 0;
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                var token = domain.ReadLock();
                var box = Volatile.Read(ref current);
                for (var i = 0; i < 50; i++)
                {
                    if (Volatile.Read(ref box.Poisoned))
                    {
                        Interlocked.Increment(ref violations);
                    }
                }

                domain.ReadUnlock(token);
                if ((Interlocked.Increment(ref reads) & 63) == 0)
                {
                    Thread.Yield(); // two cores: let the writer run
                }
            }
        })).ToList();
        readers.ForEach(t => t.Start());

        // Paced on the readers (every 50 grace periods it waits for one more read section), so the two overlap
        // over the whole run however the scheduler treats the threads.
        var random = new Random(seed);
        try
        {
            WriteAndRetire();
        }
        finally
        {
            Volatile.Write(ref stop, true);
            readers.ForEach(t => t.Join());
        }

        Assert.That(violations, Is.Zero);
        Assert.That(Interlocked.Read(ref reads), Is.GreaterThan(0));
        Assert.That(domain.GracePeriods, Is.EqualTo(500));

        void WriteAndRetire()
        {
            for (var i = 0; i < 500; i++)
            {
                if (i % 50 == 0)
                {
                    var seen = Interlocked.Read(ref reads);
                    Assert.That(SpinWait.SpinUntil(() => Interlocked.Read(ref reads) > seen, TimeSpan.FromSeconds(10)), Is.True, "the readers made no progress");
                }

                var old = Interlocked.Exchange(ref current, new Box());
                if (random.Next(4) == 0)
                {
                    Thread.Yield();
                }

                domain.Synchronize();
                Volatile.Write(ref old.Poisoned, true);
            }
        }
    }

    private sealed class Box
    {
        public bool Poisoned;
    }
}
