using System.Collections.Concurrent;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotConcurrencyTests
{
    private const ulong Page = Paging.PageSize;
    private const ulong GfnSpace = 512;
    private const int Ids = 12;
    private const int WriterOps = 20_000;
    private const int Readers = 4;
    private const int SamplesPerReader = 60_000;

    private readonly record struct ModelSlot(int Id, ulong Start, ulong Pages, ulong Hva, FakeMm Mm, MemslotFlags Flags, long Generation)
    {
        public bool Contains(ulong gfn) => gfn >= Start && gfn < Start + Pages;
    }

    private readonly record struct Sample(long Generation, ulong Gfn, int Id, ulong Base, long SlotGeneration, MemslotFlags Flags);

    [TestCase(11)]
    [TestCase(12)]
    public void Readers_OnlyEverSeeWholeGenerations_WhileAWriterChurns(int seed)
    {
        var set = new MemslotSet();
        var mms = new[] { new FakeMm(), new FakeMm() };
        var failures = new ConcurrentQueue<string>();
        var models = new List<ModelSlot[]> { Array.Empty<ModelSlot>() }; // index = generation; writer-only until join
        var samples = new List<Sample>[Readers];
        var distinctGenerations = new int[Readers];
        long readerIterations = 0;
        var writerDone = 0;
        using var started = new CountdownEvent(Readers);

        var readers = Enumerable.Range(0, Readers).Select(r => new Thread(() =>
        {
            var random = new Random(seed * 31 + r);
            var mine = samples[r] = new List<Sample>(SamplesPerReader);
            long lastGeneration = -1;
            var seen = 0;
            started.Signal();
            try
            {
                while (Volatile.Read(ref writerDone) == 0)
                {
                    var snapshot = set.Current;
                    var generation = snapshot.Generation;
                    if (generation < lastGeneration)
                    {
                        failures.Enqueue($"reader {r}: generation went back from {lastGeneration} to {generation}");
                    }

                    if (generation != lastGeneration)
                    {
                        seen++;
                        lastGeneration = generation;
                        CheckSnapshotShape(snapshot, failures);
                    }

                    for (var i = 0; i < 8; i++)
                    {
                        var gfn = new Gfn((ulong)random.Next(0, (int)GfnSpace + 8));
                        var slot = snapshot.FindByGfn(gfn);
                        if (slot is not null && (!slot.ContainsGfn(gfn) || slot.Generation > generation))
                        {
                            failures.Enqueue($"reader {r}: {gfn} in generation {generation} found {slot}");
                        }

                        if (mine.Count < SamplesPerReader)
                        {
                            mine.Add(new Sample(generation, gfn.Value, slot?.Id ?? -1, slot?.BaseGfn.Value ?? 0, slot?.Generation ?? 0, slot?.Flags ?? 0));
                        }

                        // The unsnapshotted lookup may see a newer generation, but still a whole slot.
                        var live = set.FindByGfn(gfn);
                        if (live is not null && !live.ContainsGfn(gfn))
                        {
                            failures.Enqueue($"reader {r}: live lookup of {gfn} found {live}");
                        }
                    }

                    CheckHvaWalk(snapshot, mms[random.Next(2)], random, failures);
                    Interlocked.Increment(ref readerIterations);
                }
            }
            catch (Exception ex)
            {
                failures.Enqueue($"reader {r} threw {ex}");
            }

            distinctGenerations[r] = seen;
        })).ToArray();

        foreach (var reader in readers)
        {
            reader.Start();
        }

        started.Wait();
        try
        {
            RunWriter(set, mms, seed, models, failures, () => Interlocked.Read(ref readerIterations));
        }
        catch (Exception ex)
        {
            failures.Enqueue($"writer threw {ex}");
        }
        finally
        {
            Volatile.Write(ref writerDone, 1);
            foreach (var reader in readers)
            {
                reader.Join();
            }
        }

        Assert.That(failures, Is.Empty);
        Assert.That(set.Generation, Is.EqualTo(models.Count - 1));
        Assert.That(models.Count, Is.GreaterThan(WriterOps / 2), "most writer operations should succeed");
        Assert.That(distinctGenerations, Has.All.GreaterThan(10), "every reader should have seen the set change under it");

        // Each sample must be exactly what the writer's model says about that gfn in that generation.
        var checkedSamples = 0;
        foreach (var sample in samples.SelectMany(s => s))
        {
            var expected = models[(int)sample.Generation].Where(m => m.Contains(sample.Gfn)).ToList();
            var ok = expected.Count switch
            {
                0 => sample.Id == -1,
                1 => sample.Id == expected[0].Id && sample.Base == expected[0].Start
                     && sample.SlotGeneration == expected[0].Generation && sample.Flags == expected[0].Flags,
                _ => false,
            };
            if (!ok)
            {
                Assert.Fail($"generation {sample.Generation}, gfn 0x{sample.Gfn:x}: saw slot {sample.Id} base 0x{sample.Base:x} gen {sample.SlotGeneration}, model has {string.Join(", ", expected)}");
            }

            checkedSamples++;
        }

        Assert.That(checkedSamples, Is.GreaterThan(1000));
    }

    /// <summary>Random creates, moves, flag flips and deletes; each outcome is checked against a brute-force model.</summary>
    private static void RunWriter(MemslotSet set, FakeMm[] mms, int seed, List<ModelSlot[]> models, ConcurrentQueue<string> failures, Func<long> readerProgress)
    {
        var random = new Random(seed);
        var model = new Dictionary<int, ModelSlot>();
        for (var op = 0; op < WriterOps; op++)
        {
            // Every so often let the readers run, so that the two sides really interleave even on one core.
            if (op % 256 == 0)
            {
                var before = readerProgress();
                var spin = new SpinWait();
                var deadline = Environment.TickCount64 + 1000;
                while (readerProgress() < before + Readers && Environment.TickCount64 < deadline)
                {
                    spin.SpinOnce();
                }
            }

            var id = random.Next(Ids);
            var generation = (long)models.Count;
            model.TryGetValue(id, out var old);
            var exists = model.ContainsKey(id);
            ModelSlot? next;
            if (exists && random.Next(10) < 3)
            {
                next = null; // delete
            }
            else if (exists && random.Next(10) < 5)
            {
                next = old with { Flags = old.Flags ^ MemslotFlags.LogDirtyPages, Generation = generation };
            }
            else if (exists)
            {
                next = old with { Start = (ulong)random.Next(0, (int)(GfnSpace - old.Pages)), Generation = generation };
            }
            else
            {
                var pages = (ulong)random.Next(1, 48);
                next = new ModelSlot(
                    id,
                    (ulong)random.Next(0, (int)(GfnSpace - pages)),
                    pages,
                    0x1000_0000UL + ((ulong)random.Next(0, 64) * Page),
                    mms[random.Next(2)],
                    random.Next(4) == 0 ? MemslotFlags.ReadOnly : MemslotFlags.None,
                    generation);
            }

            var overlaps = next is { } n && model.Values.Any(m => m.Id != id && m.Start < n.Start + n.Pages && n.Start < m.Start + m.Pages);
            var noOp = !exists && next is null || exists && next is { } same && same.Start == old.Start && same.Flags == old.Flags;
            MemslotChange change;
            try
            {
                change = next is { } s
                    ? set.SetRegion(id, s.Flags, new Gfn(s.Start).ToGpa(), s.Pages * Page, new Hva(s.Hva), s.Mm)
                    : set.SetRegion(id, MemslotFlags.None, default, 0, default, mms[0]);
            }
            catch (MemslotException ex) when (ex.Error == MemslotError.Overlap)
            {
                if (!overlaps)
                {
                    failures.Enqueue($"op {op}: rejected without an overlap: {ex.Message}");
                }

                continue;
            }

            if (overlaps)
            {
                failures.Enqueue($"op {op}: accepted an overlapping slot: {change}");
                continue;
            }

            if (noOp)
            {
                continue;
            }

            if (change.Generation != generation)
            {
                failures.Enqueue($"op {op}: change {change} has generation {change.Generation}, expected {generation}");
                return;
            }

            if (next is { } installed)
            {
                model[id] = installed;
            }
            else
            {
                model.Remove(id);
            }

            models.Add(model.Values.ToArray());
        }
    }

    private static void CheckSnapshotShape(MemslotSnapshot snapshot, ConcurrentQueue<string> failures)
    {
        var slots = snapshot.Slots;
        if (slots.Count != snapshot.Count)
        {
            failures.Enqueue($"generation {snapshot.Generation}: Slots has {slots.Count} entries, Count says {snapshot.Count}");
        }

        for (var i = 0; i < slots.Count; i++)
        {
            if (i > 0 && slots[i - 1].EndGfn > slots[i].BaseGfn)
            {
                failures.Enqueue($"generation {snapshot.Generation}: {slots[i - 1]} overlaps or follows {slots[i]}");
            }

            if (slots[i].Generation > snapshot.Generation || !ReferenceEquals(snapshot.FindById(slots[i].Id), slots[i]))
            {
                failures.Enqueue($"generation {snapshot.Generation}: {slots[i]} is inconsistent with the snapshot");
            }
        }
    }

    private static void CheckHvaWalk(MemslotSnapshot snapshot, IMm mm, Random random, ConcurrentQueue<string> failures)
    {
        var start = 0x1000_0000UL + (ulong)random.Next(0, 0x8_0000);
        var end = start + 1 + (ulong)random.Next(0, 0x2_0000);
        var expected = snapshot.Slots.Count(s => ReferenceEquals(s.Mm, mm) && s.UserspaceAddress.Value < end && start < s.UserspaceEnd.Value);
        var count = 0;
        foreach (var range in snapshot.OverlappingHva(mm, new Hva(start), new Hva(end)))
        {
            count++;
            var slot = range.Slot;
            if (!ReferenceEquals(slot.Mm, mm) || range.Start >= range.End || range.Start < slot.BaseGfn || range.End > slot.EndGfn
                || !ReferenceEquals(snapshot.FindById(slot.Id), slot))
            {
                failures.Enqueue($"generation {snapshot.Generation}: HVA walk [0x{start:x}, 0x{end:x}) yielded {range}");
            }
        }

        if (count != expected)
        {
            failures.Enqueue($"generation {snapshot.Generation}: HVA walk [0x{start:x}, 0x{end:x}) yielded {count} slots, expected {expected}");
        }
    }
}
