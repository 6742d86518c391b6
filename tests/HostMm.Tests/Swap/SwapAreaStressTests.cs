using System.Collections.Concurrent;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// Seeded multi-threaded runs of the whole slot life against a per-thread model: no slot is handed out twice, every
/// word equals the model's (so counts never go negative or drift), the free count and the cluster lists stay
/// consistent, and every read returns the page written or a failure status with the page poisoned.
/// </summary>
public sealed class SwapAreaStressTests
{
    [Test]
    public void SeededSlotLifeStress_OnZram() => Run(new StressSetup(SwapDeviceKind.Zram, Threads: 4, Ops: 15_000, Slots: 6000, Seed: 1));

    [Test]
    public void SeededSlotLifeStress_OnAFile_WithInjectedFaults() =>
        Run(new StressSetup(SwapDeviceKind.File, Threads: 3, Ops: 4_000, Slots: 3000, Seed: 2, FaultRate: 0.05));

    [Test]
    [Category("Stress")]
    [Explicit("long: about a minute")]
    public void LongSeededSlotLifeStress([Values] SwapDeviceKind kind, [Values(0.0, 0.02)] double faultRate) =>
        Run(new StressSetup(kind, Threads: 8, Ops: 300_000, Slots: 20_000, Seed: 3, FaultRate: faultRate));

    private static void Run(StressSetup setup)
    {
        var options = new SwapOptions
        {
            Kind = setup.Kind,
            SizeBytes = (ulong)setup.Slots * 4096,
            FaultInjection = setup.FaultRate > 0
                ? new SwapFaultInjection
                {
                    Seed = setup.Seed,
                    ReadErrorRate = setup.FaultRate,
                    WriteErrorRate = setup.FaultRate,
                    CorruptReadRate = setup.FaultRate,
                    CorruptWriteRate = setup.FaultRate,
                }
                : null,
        };
        using var area = SwapFactory.CreateArea(options);
        var owner = new int[setup.Slots];
        var failures = new ConcurrentQueue<string>();
        using var start = new Barrier(setup.Threads);
        var threads = Enumerable.Range(0, setup.Threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                new Worker(area, owner, t, setup.Seed * 1000 + t, failures).Run(setup.Ops);
            }
            catch (Exception ex)
            {
                failures.Enqueue($"thread {t}: {ex}");
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());

        Assert.That(failures.Take(5), Is.Empty);
        var stats = area.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(area.Audit(), Is.Null);
            Assert.That(stats.FreeSlots, Is.EqualTo(stats.TotalSlots), "every slot went back");
            Assert.That(stats.Allocations, Is.EqualTo(stats.SlotsFreed));
            Assert.That(stats.FreeClusters + stats.FullClusters, Is.EqualTo((setup.Slots + 511) / 512), "no cluster left non-full");
            Assert.That(owner.All(o => o == 0), Is.True);
            Assert.That(stats.Pswpin, Is.GreaterThan(0));
        });
    }

    private sealed record StressSetup(SwapDeviceKind Kind, int Threads, int Ops, int Slots, int Seed, double FaultRate = 0);

    /// <summary>One thread's slots and its model of their words and data.</summary>
    private sealed class Worker(SwapArea area, int[] owner, int thread, int seed, ConcurrentQueue<string> failures)
    {
        private const int MaxHeld = 400;
        private readonly Random _random = new(seed);
        private readonly List<ulong> _held = [];
        private readonly Dictionary<ulong, Model> _model = [];
        private readonly byte[] _page = new byte[4096];
        private readonly byte[] _read = new byte[4096];
        private readonly ulong[] _batch = new ulong[8];

        public void Run(int ops)
        {
            for (var op = 0; op < ops && failures.IsEmpty; op++)
            {
                var choice = _random.Next(100);
                if (_held.Count == 0 || (choice < 25 && _held.Count < MaxHeld))
                {
                    Allocate();
                    continue;
                }

                var slot = _held[_random.Next(_held.Count)];
                var m = _model[slot];
                if (choice < 40)
                {
                    area.Duplicate(slot);
                    m.Count++;
                }
                else if (choice < 55 && m.Count > 0)
                {
                    m.Count--;
                    Release(slot, m, () => area.FreeReference(slot));
                }
                else if (choice < 65 && m.Cache && (m.HasData || m.Count == 0))
                {
                    // Linux drops a page from the swap cache only once the slot holds it (or nothing refers to it).
                    m.Cache = false;
                    Release(slot, m, () => area.ClearCache(slot));
                }
                else if (choice < 70 && !m.Cache)
                {
                    Expect(area.TrySetCache(slot) == SwapCachePrepareResult.Prepared, slot, "TrySetCache on an uncached slot");
                    m.Cache = true;
                }
                else if (choice < 85 && m.Cache)
                {
                    Write(slot, m);
                }
                else if (m.Cache && m.HasData)
                {
                    Read(slot, m);
                }

                if (_model.ContainsKey(slot))
                {
                    var expected = (ushort)(m.Count | (m.Cache ? SwapSlotUsage.HasCacheFlag : 0));
                    Expect(area.GetUsage(slot).Word == expected, slot, $"word {area.GetUsage(slot)} but the model says {new SwapSlotUsage(expected)}");
                }
            }

            foreach (var slot in _held.ToArray())
            {
                var m = _model[slot];
                while (m.Count > 0)
                {
                    m.Count--;
                    if (m.Count == 0 && !m.Cache)
                    {
                        Release(slot, m, () => area.FreeReference(slot));
                    }
                    else
                    {
                        area.FreeReference(slot);
                    }
                }

                if (m.Cache)
                {
                    m.Cache = false;
                    Release(slot, m, () => area.ClearCache(slot));
                }
            }
        }

        private void Allocate()
        {
            var n = area.AllocateBatch(_batch.AsSpan(0, 1 + _random.Next(_batch.Length)));
            for (var i = 0; i < n; i++)
            {
                var slot = _batch[i];
                var previous = Interlocked.CompareExchange(ref owner[slot], thread + 1, 0);
                Expect(previous == 0, slot, $"handed out while thread {previous - 1} holds it");
                _held.Add(slot);
                _model[slot] = new Model { Cache = true };
            }
        }

        /// <summary>Drops the model's last hold (the owner mark goes first: the area may hand the slot out at once) and checks the area freed it exactly then.</summary>
        private void Release(ulong slot, Model m, Func<bool> call)
        {
            var last = m.Count == 0 && !m.Cache;
            if (last)
            {
                Volatile.Write(ref owner[slot], 0);
                _held.Remove(slot);
                _model.Remove(slot);
            }

            Expect(call() == last, slot, last ? "not freed by its last reference" : "freed while still referenced");
        }

        private void Write(ulong slot, Model m)
        {
            m.Version = _random.Next();
            SwapPages.Fill(_page, (SwapPageKind)(m.Version % 4), m.Version);
            var result = area.Write(slot, _page);
            m.HasData = result.IsOk;
            Expect(result.IsOk || result.Slot == slot, slot, $"write failure {result} names another slot");
        }

        private void Read(ulong slot, Model m)
        {
            var result = area.Read(slot, _read);
            if (!result.IsOk)
            {
                Expect(result.Slot == slot && _read.All(b => b == SwapArea.PoisonByte), slot, $"read failure {result} without a poisoned page");
                return;
            }

            SwapPages.Fill(_page, (SwapPageKind)(m.Version % 4), m.Version);
            Expect(_read.AsSpan().SequenceEqual(_page), slot, "read returned other data as good");
        }

        private void Expect(bool condition, ulong slot, string what)
        {
            if (!condition)
            {
                failures.Enqueue($"thread {thread}, slot 0x{slot:x}: {what}");
            }
        }

        private sealed class Model
        {
            public int Count;
            public bool Cache;
            public bool HasData;
            public int Version;
        }
    }
}
