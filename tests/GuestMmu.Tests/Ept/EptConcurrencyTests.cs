using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// The <see cref="HardwareAdPolicy"/> rule under races with "hardware" setting dirty bits: no dirty bit
/// a vCPU managed to set may be lost by a zap or an aging pass, on any kernel path.
/// </summary>
[Parallelizable(ParallelScope.Self)] // the tests in one instance start threads of their own: one at a time
public sealed class EptConcurrencyTests(EptVectorWidth width) : VectorPathFixture(width)
{
    private const int Leaves = 4096;
    private static readonly Spte CleanTemplate = Spte.Leaf(new Pfn(0), writable: true, executable: false, large: false, accessed: true);

    [Test]
    public void Lockless_ADirtyBitSetWhileTheZapRuns_IsReported()
    {
        // The sink runs inside the zap: each report makes "hardware" dirty the next gfn, which the zap has not reached yet.
        using var ept = NewTable(policy: HardwareAdPolicy.Lockless);
        ept.PopulateLeaves(new Gfn(0), new Gfn(Leaves), new Pfn(0x1000), CleanTemplate);
        Assert.That(ept.TrySetAccessedDirty(new Gfn(100), ept.Read(new Gfn(100)), dirty: true), Is.True);
        var sink = new ChainDirtySink(ept);
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(Leaves), ref sink);
        Assert.That(result.Zapped, Is.EqualTo(Leaves));
        Assert.That(sink.Hardware, Is.EqualTo(Leaves - 101), "hardware dirtied every later gfn before the zap reached it");
        Assert.That(result.Dirty, Is.EqualTo(Leaves - 100));
        Assert.That(sink.Reported, Is.EqualTo(Enumerable.Range(100, Leaves - 100).Select(g => (ulong)g)));
    }

    [Test]
    public void ZapRacingWithHardwareDirtyBits_LosesNone([Values] HardwareAdPolicy policy)
    {
        for (var round = 0; round < 8; round++)
        {
            using var ept = NewTable(policy: policy);
            ept.PopulateLeaves(new Gfn(0), new Gfn(Leaves), new Pfn(0x1000), CleanTemplate);
            using var mmuLock = new ReaderWriterLockSlim();
            using var hardware = new HardwareDirtier(ept, mmuLock, policy, seed: round);
            hardware.WaitForProgress();

            var sink = new RecordingSink();
            mmuLock.EnterWriteLock();
            try
            {
                ept.ZapLeaves(new Gfn(0), new Gfn(Leaves), ref sink);
            }
            finally
            {
                mmuLock.ExitWriteLock();
            }

            hardware.Stop();
            Assert.That(sink.Reports.Select(r => r.Gfn.Value), Is.EquivalentTo(hardware.Dirtied), $"round {round}: every dirty bit hardware set is reported once");
            Assert.That(ept.CountPresentLeaves(), Is.Zero);
        }
    }

    [Test]
    public void AgingRacingWithHardwareDirtyBits_LosesNone([Values] HardwareAdPolicy policy)
    {
        for (var round = 0; round < 8; round++)
        {
            using var ept = NewTable(policy: policy);
            ept.PopulateLeaves(new Gfn(0), new Gfn(Leaves), new Pfn(0x1000), CleanTemplate);
            using var mmuLock = new ReaderWriterLockSlim();
            using var hardware = new HardwareDirtier(ept, mmuLock, policy, seed: round);
            hardware.WaitForProgress();

            mmuLock.EnterWriteLock();
            try
            {
                ept.AgeLeaves(new Gfn(0), new Gfn(Leaves), clear: true, AgingMode.AccessedBit);
            }
            finally
            {
                mmuLock.ExitWriteLock();
            }

            hardware.Stop();
            foreach (var gfn in hardware.Dirtied)
            {
                Assert.That(ept.Read(new Gfn(gfn)).IsDirty, Is.True, $"round {round}: D of {new Gfn(gfn)} survived aging");
            }
        }
    }

    [Test]
    public void PresentLeafCount_UnderInstallsRacingWithZaps_StaysExact()
    {
        // Installers (and, in even rounds, compare-and-swap zaps) under the read lock, range zaps under the
        // write lock, a lock-free reader of the count. The zap side of the count is written without a locked
        // instruction, which is only sound because the two lock modes exclude each other: every write-locked
        // moment must see the count equal to a full recount. Without compare-and-swap zaps (whose decrement
        // may land before the racing install's increment, as it always could) the lock-free reader must
        // never see a negative count, whatever zaps run between its two reads.
        for (var round = 0; round < 4; round++)
        {
            var casZaps = round % 2 == 0;
            using var ept = NewTable();
            using var mmuLock = new ReaderWriterLockSlim();
            using var stop = new CancellationTokenSource();
            long lowestSeen = 0, mismatches = 0, zapsChecked = 0;
            var installers = Enumerable.Range(0, 2).Select(t => new Thread(() =>
            {
                var random = new Random((round * 16) + t);
                var installs = 0;
                while (!stop.IsCancellationRequested)
                {
                    var gfn = new Gfn((ulong)random.Next(Leaves));
                    mmuLock.EnterReadLock();
                    try
                    {
                        var current = ept.ReadAt(gfn, 1);
                        var next = casZaps && current.IsPresent && random.Next(4) == 0
                            ? Spte.Empty
                            : Spte.Leaf(new Pfn(0x1000 + gfn.Value), writable: true, executable: false, large: false, accessed: true);
                        ept.Install(gfn, 1, current, current.IsPresent && next.IsPresent ? current : next);
                    }
                    finally
                    {
                        mmuLock.ExitReadLock();
                    }

                    // Two cores: give the zapper its turn now and then instead of starving it for a time slice.
                    if (++installs % 32 == 0)
                    {
                        Thread.Yield();
                    }
                }
            })).ToList();
            var reader = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var seen = ept.PresentLeaves;
                    InterlockedMin(ref lowestSeen, seen);
                    Thread.Yield();
                }
            });
            installers.ForEach(t => t.Start());
            reader.Start();

            // Zaps start once the installers run, so the race happens however the threads are scheduled.
            Assert.That(SpinWait.SpinUntil(() => ept.GetStats().Installs > 0, TimeSpan.FromSeconds(10)), Is.True, $"round {round}: the installers never ran");
            var zapRandom = new Random(round);
            for (var zap = 0; zap < 150; zap++)
            {
                var start = (ulong)zapRandom.Next(Leaves);
                var end = Math.Min(Leaves, start + 1 + (ulong)zapRandom.Next(zap % 4 == 0 ? Leaves : 600));
                var sink = new RecordingSink();
                mmuLock.EnterWriteLock();
                try
                {
                    ept.ZapLeaves(new Gfn(start), new Gfn(end), ref sink);
                    if (ept.PresentLeaves != ept.CountPresentLeaves())
                    {
                        mismatches++;
                    }

                    zapsChecked++;
                }
                finally
                {
                    mmuLock.ExitWriteLock();
                }

                Thread.Yield();
            }

            stop.Cancel();
            installers.ForEach(t => t.Join());
            reader.Join();
            Assert.That(mismatches, Is.Zero, $"round {round}: the count matched a recount after each of {zapsChecked} zaps");
            Assert.That(ept.PresentLeaves, Is.EqualTo(ept.CountPresentLeaves()), $"round {round}: exact when quiescent");
            Assert.That(ept.GetStats().PresentLeaves, Is.EqualTo(ept.PresentLeaves));
            if (!casZaps)
            {
                Assert.That(lowestSeen, Is.GreaterThanOrEqualTo(0), $"round {round}: a racing reader never sees a negative count");
            }

            Assert.That(ept.GetStats().Installs, Is.GreaterThan(0));
        }
    }

    private static void InterlockedMin(ref long target, long value)
    {
        for (var seen = Volatile.Read(ref target); value < seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }

    /// <summary>Dirties the next gfn each time it is called, as a vCPU writing just ahead of the zap.</summary>
    private struct ChainDirtySink(EptPageTable ept) : IDirtyPfnSink
    {
        public List<ulong> Reported { get; } = [];

        public int Hardware { get; private set; }

        public void MarkDirty(Gfn gfn, Pfn pfn, int level)
        {
            Reported.Add(gfn.Value);
            var next = gfn + 1;
            if (next.Value < Leaves)
            {
                var observed = ept.Read(next);
                if (observed.IsPresent && ept.TrySetAccessedDirty(next, observed, dirty: true))
                {
                    Hardware++;
                }
            }
        }
    }

    /// <summary>A vCPU thread that keeps setting D on random clean leaves, following the policy's locking rule.</summary>
    private sealed class HardwareDirtier : IDisposable
    {
        private readonly EptPageTable _ept;
        private readonly ReaderWriterLockSlim _mmuLock;
        private readonly HardwareAdPolicy _policy;
        private readonly Thread _thread;
        private readonly bool[] _dirtied = new bool[Leaves];
        private int _count;
        private volatile bool _stop;

        public HardwareDirtier(EptPageTable ept, ReaderWriterLockSlim mmuLock, HardwareAdPolicy policy, int seed)
        {
            _ept = ept;
            _mmuLock = mmuLock;
            _policy = policy;
            _thread = new Thread(() => Run(new Random(seed))) { IsBackground = true };
            _thread.Start();
        }

        public IEnumerable<ulong> Dirtied => Enumerable.Range(0, Leaves).Where(i => _dirtied[i]).Select(i => (ulong)i);

        public void WaitForProgress()
        {
            SpinWait.SpinUntil(() => Volatile.Read(ref _count) >= 200, TimeSpan.FromSeconds(10));
        }

        public void Stop()
        {
            _stop = true;
            _thread.Join();
        }

        public void Dispose()
        {
            if (!_stop)
            {
                Stop();
            }
        }

        private void Run(Random random)
        {
            while (!_stop)
            {
                var gfn = new Gfn((ulong)random.Next(Leaves));
                var observed = _ept.Read(gfn);
                if (!observed.IsPresent || observed.IsDirty)
                {
                    continue;
                }

                var locked = _policy == HardwareAdPolicy.DirtyUnderMmuLock;
                if (locked)
                {
                    _mmuLock.EnterReadLock();
                }

                try
                {
                    if (_ept.TrySetAccessedDirty(gfn, observed, dirty: true))
                    {
                        _dirtied[gfn.Value] = true;
                        Interlocked.Increment(ref _count);
                    }
                }
                finally
                {
                    if (locked)
                    {
                        _mmuLock.ExitReadLock();
                    }
                }
            }
        }
    }
}
