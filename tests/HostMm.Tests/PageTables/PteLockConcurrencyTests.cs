using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.PageTables.PageTableTestSupport;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class PteLockConcurrencyTests
{
    private const int Threads = 4;
    private const int Increments = 10_000;

    [Test]
    public void IncrementsUnderTheLock_FromFourThreads_AreNeverLost()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var address = At(OneGiB + (17 * Page));
        using var barrier = new Barrier(Threads);
        var failures = new ConcurrentQueue<Exception>();

        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            try
            {
                barrier.SignalAndWait();
                for (var i = 0; i < Increments; i++)
                {
                    if (!table.TryLock(address, allocate: true, out var pte))
                    {
                        throw new InvalidOperationException("TryLock with allocate failed");
                    }

                    using (pte)
                    {
                        // A read-modify-write split in two so that a second holder would interleave and lose updates.
                        var old = pte.Value.Value;
                        Thread.SpinWait(t);
                        pte.Value = new HostPte(old + 1);
                    }
                }
            }
            catch (Exception ex)
            {
                failures.Enqueue(ex);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        Assert.That(failures, Is.Empty);
        Assert.That(table.Read(address).Value, Is.EqualTo((ulong)(Threads * Increments)));
        Assert.That(table.Stats.PteTables, Is.EqualTo(1));
        Assert.That(table.TryLock(address, allocate: false, out var check), Is.True);
        using (check)
        {
            Assert.That(memory.Frame(check.TablePfn).Has(FrameFlags.Locked), Is.True);
        }
    }

    [Test]
    public void AWalkWaitsForAHeldPteLock()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x1000, Tagged(1));
        Set(table, TwoMiB + 0x1000, Tagged(2));
        var visited = new StrongBox<int>();
        var walkDone = 0;

        // The walk covers two PTE tables; the second one's lock is held. Seeing the first table visited proves
        // the walker runs and has nothing left to do before the second table but take its lock.
        Assert.That(table.TryLock(At(TwoMiB + 0x1000), allocate: false, out var pte), Is.True);
        Thread walker;
        using (pte)
        {
            walker = new Thread(() =>
            {
                var visitor = new CountingVisitor(visited);
                table.Walk(At(0), At(2 * TwoMiB), allocate: false, ref visitor);
                Volatile.Write(ref walkDone, 1);
            });
            walker.Start();
            Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref visited.Value) >= 1, TimeSpan.FromSeconds(10)), Is.True, "the walk visited the unlocked table");
            Assert.That(Volatile.Read(ref walkDone), Is.Zero, "the walk entered a PTE table whose lock another thread held");
            Assert.That(Volatile.Read(ref visited.Value), Is.EqualTo(1));
            Assert.That(walker.IsAlive, Is.True);
        }

        Assert.That(walker.Join(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(Volatile.Read(ref walkDone), Is.EqualTo(1));
        Assert.That(Volatile.Read(ref visited.Value), Is.EqualTo(2), "the locked table was visited once the lock was released");
    }

    /// <summary>Counts visited PTE tables into a shared box that another thread can watch.</summary>
    private readonly struct CountingVisitor(StrongBox<int> visited) : IPteVisitor
    {
        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            Interlocked.Increment(ref visited.Value);
            return true;
        }
    }
}
