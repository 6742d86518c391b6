using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

/// <summary>
/// Thousands of seeded random operations on a <see cref="VmaSet"/>, checked after every one against a
/// brute-force model that keeps one record per page (mapped, first page of a VMA, identity, page index,
/// protection, flags) over a 256-page window.
/// </summary>
public sealed class VmaSetModelTests
{
    private const int Pages = 256;

    private static readonly Protection[] s_protections =
    [
        Protection.None, Protection.Read, Protection.Read | Protection.Write,
        Protection.Read | Protection.Execute, Protection.Read | Protection.Write | Protection.Execute,
    ];

    private static readonly VmaFlags[] s_flags =
    [
        VmaFlags.None, VmaFlags.Mergeable, VmaFlags.HugePage, VmaFlags.NoHugePage, VmaFlags.Mergeable | VmaFlags.HugePage,
    ];

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void RandomOperations_AgreeWithAPerPageModel(int seed)
    {
        var random = new Random(seed);
        var set = new VmaSet();
        var model = new Model();
        var seenAnonIds = new HashSet<long>();
        var counts = new int[10];

        for (var step = 0; step < 4000; step++)
        {
            var op = random.Next(10);
            var vmas = set.ToList();
            if (op != 0 && op != 9 && vmas.Count == 0)
            {
                op = 0;
            }

            counts[op]++;
            var context = $"seed {seed} step {step} op {op}";
            var vma = vmas.Count == 0 ? null : vmas[random.Next(vmas.Count)];
            switch (op)
            {
                case 0:
                    DoAdd(random, set, model, seenAnonIds, context);
                    break;
                case 1:
                    model.Unmap(Pg(vma!.Start), Pg(vma.End));
                    set.Remove(vma);
                    Assert.That(vma.IsInSet, Is.False, context);
                    break;
                case 2:
                case 3:
                    if (vma!.Pages >= 2)
                    {
                        var at = Pg(vma.Start) + 1 + random.Next((int)vma.Pages - 1);
                        var right = set.Split(vma, P((ulong)at));
                        model.Starts[at] = true;
                        Assert.That(right.Start, Is.EqualTo(P((ulong)at)), context);
                    }

                    break;
                case 4:
                    DoMerge(set, model, vma!, context);
                    break;
                case 5:
                    DoResize(random, set, model, vma!, context);
                    break;
                case 6:
                    if (random.Next(2) == 0)
                    {
                        var protection = s_protections[random.Next(s_protections.Length)];
                        set.SetProtection(vma!, protection);
                        Array.Fill(model.Prot, protection, Pg(vma!.Start), (int)vma.Pages);
                    }
                    else
                    {
                        var flags = s_flags[random.Next(s_flags.Length)];
                        set.SetFlags(vma!, flags);
                        Array.Fill(model.Flags, flags, Pg(vma!.Start), (int)vma.Pages);
                    }

                    break;
                case 7:
                    DoSplitToRange(random, set, model, context);
                    break;
                case 8:
                    DoMove(random, set, model, vma!, context);
                    break;
                default:
                    CheckQueries(random, set, model, context);
                    break;
            }

            CheckAgrees(random, set, model, context);
        }

        Assert.That(counts, Has.All.GreaterThan(100), "every operation ran often");
    }

    private static int Pg(Hva address) => (int)((address - Base) / Page);

    private static void DoAdd(Random random, VmaSet set, Model model, HashSet<long> seenAnonIds, string context)
    {
        var s = random.Next(Pages);
        var e = Math.Min(Pages, s + 1 + random.Next(16));
        var protection = s_protections[random.Next(s_protections.Length)];
        var flags = s_flags[random.Next(s_flags.Length)];
        var blocker = model.FirstMappedIn(s, e);
        if (blocker < 0)
        {
            var vma = set.Add(P((ulong)s), P((ulong)e), protection, flags);
            Assert.That(seenAnonIds.Add(vma.AnonId), Is.True, $"{context}: AnonId is fresh");
            Assert.That(vma.PageOffset, Is.EqualTo(P((ulong)s).PageNumber), context);
            model.Map(s, e, s, protection, flags, vma.AnonId, vma.PageOffset);
        }
        else
        {
            var ex = Assert.Throws<OverlappingMappingException>(() => set.Add(P((ulong)s), P((ulong)e), protection, flags), context);
            Assert.That(ex!.ExistingStart, Is.EqualTo(P((ulong)model.VmaStartOf(blocker))), $"{context}: lowest colliding VMA");
            Assert.That(ex.ExistingEnd, Is.EqualTo(P((ulong)model.VmaEndOf(blocker))), context);
        }
    }

    private static void DoMerge(VmaSet set, Model model, Vma vma, string context)
    {
        var s = Pg(vma.Start);
        var e = Pg(vma.End);
        var mergePrev = s > 0 && model.Mapped[s - 1] && model.SameMapping(s - 1, s);
        var mergeNext = e < Pages && model.Mapped[e] && model.SameMapping(e - 1, e);
        var expectedStart = mergePrev ? model.VmaStartOf(s - 1) : s;
        var expectedEnd = mergeNext ? model.VmaEndOf(e) : e;
        if (mergePrev)
        {
            model.Starts[s] = false;
        }

        if (mergeNext)
        {
            model.Starts[e] = false;
        }

        var survivor = set.MergeWithNeighbours(vma);
        Assert.That((survivor.Start, survivor.End), Is.EqualTo((P((ulong)expectedStart), P((ulong)expectedEnd))), context);
        Assert.That(survivor.IsInSet, Is.True, context);
        Assert.That(vma.IsInSet, Is.EqualTo(ReferenceEquals(survivor, vma)), $"{context}: a merged-away VMA is detached");
    }

    private static void DoResize(Random random, VmaSet set, Model model, Vma vma, string context)
    {
        var s = Pg(vma.Start);
        var e = Pg(vma.End);
        var newEnd = s + 1 + random.Next(Math.Min(Pages, e + 8) - s);
        if (newEnd > e && model.FirstMappedIn(e, newEnd) >= 0)
        {
            Assert.That(() => set.Resize(vma, P((ulong)newEnd)), Throws.TypeOf<OverlappingMappingException>(), context);
            return;
        }

        var (protection, flags, anon, offset) = (vma.Protection, vma.Flags, vma.AnonId, vma.PageOffset);
        set.Resize(vma, P((ulong)newEnd));
        if (newEnd > e)
        {
            model.Map(e, newEnd, s, protection, flags, anon, offset + (ulong)(e - s));
        }
        else
        {
            model.Unmap(newEnd, e);
        }
    }

    private static void DoSplitToRange(Random random, VmaSet set, Model model, string context)
    {
        var s = random.Next(Pages);
        var e = s + 1 + random.Next(Math.Min(40, Pages - s));
        if (model.Mapped[s])
        {
            model.Starts[s] = true;
        }

        if (e < Pages && model.Mapped[e])
        {
            model.Starts[e] = true;
        }

        var inside = set.SplitToRange(P((ulong)s), P((ulong)e));
        var expected = model.Vmas().Where(v => v.Start >= s && v.End <= e).Select(v => (P((ulong)v.Start), P((ulong)v.End)));
        Assert.That(Ranges(inside), Is.EqualTo(expected), context);
    }

    private static void DoMove(Random random, VmaSet set, Model model, Vma vma, string context)
    {
        var s = Pg(vma.Start);
        var e = Pg(vma.End);
        var length = e - s;
        var destination = random.Next(Pages - length + 1);
        var (protection, flags, anon, offset) = (vma.Protection, vma.Flags, vma.AnonId, vma.PageOffset);

        set.Remove(vma);
        model.Unmap(s, e);
        var moved = vma.CopyTo(P((ulong)destination));
        if (model.FirstMappedIn(destination, destination + length) < 0)
        {
            set.Insert(moved);
            model.Map(destination, destination + length, destination, protection, flags, anon, offset);
        }
        else
        {
            Assert.That(() => set.Insert(moved), Throws.TypeOf<OverlappingMappingException>(), context);
            Assert.That(moved.IsInSet, Is.False, context);
            set.Insert(vma);
            model.Map(s, e, s, protection, flags, anon, offset);
        }
    }

    private static void CheckQueries(Random random, VmaSet set, Model model, string context)
    {
        for (var i = 0; i < 8; i++)
        {
            var s = random.Next(Pages);
            var e = s + random.Next(Pages - s + 1);
            var startByte = (ulong)random.Next((int)Page);
            var start = P((ulong)s) + startByte;
            var end = e == s ? start : P((ulong)e);

            var expected = model.Vmas()
                .Where(v => start < end && P((ulong)v.Start) < end && P((ulong)v.End) > start)
                .Select(v => (P((ulong)v.Start), P((ulong)v.End)));
            Assert.That(Ranges(set.Intersecting(start, end)), Is.EqualTo(expected), $"{context}: Intersecting [{start}, {end})");

            var fullyMapped = Enumerable.Range(s, e - s).All(p => model.Mapped[p]);
            Assert.That(set.IsFullyMapped(start, end), Is.EqualTo(fullyMapped), $"{context}: IsFullyMapped [{start}, {end})");

            var lengthPages = 1 + random.Next(12);
            var low = P((ulong)s) + (e > s && random.Next(4) == 0 ? startByte : 0UL);
            var high = P((ulong)e);
            Hva? gap = null;
            for (var a = low.PageAlignedUp; a + (ulong)lengthPages * Page <= high; a += Page)
            {
                if (model.FirstMappedIn(Pg(a), Pg(a) + lengthPages) < 0)
                {
                    gap = a;
                    break;
                }
            }

            Assert.That(set.FindGap((ulong)lengthPages * Page, low, high), Is.EqualTo(gap), $"{context}: FindGap {lengthPages} pages in [{low}, {high})");
        }
    }

    private static void CheckAgrees(Random random, VmaSet set, Model model, string context)
    {
        set.CheckInvariants();
        var expected = model.Vmas()
            .Select(v => (P((ulong)v.Start), P((ulong)v.End), model.Prot[v.Start], model.Flags[v.Start], model.Anon[v.Start], model.Index[v.Start]))
            .ToArray();
        var actual = set.Select(v => (v.Start, v.End, v.Protection, v.Flags, v.AnonId, v.PageOffset)).ToArray();
        if (!actual.SequenceEqual(expected) || set.Count != expected.Length || set.TotalPages != (ulong)model.Mapped.Count(m => m))
        {
            Assert.That(actual, Is.EqualTo(expected), context);
            Assert.That(set.Count, Is.EqualTo(expected.Length), context);
            Assert.That(set.TotalPages, Is.EqualTo((ulong)model.Mapped.Count(m => m)), context);
        }

        // Plain comparisons first: an Assert per page per step would dominate the run time.
        for (var p = 0; p < Pages; p++)
        {
            var address = P((ulong)p) + (ulong)random.Next((int)Page);
            var found = set.Find(address);
            var agrees = model.Mapped[p]
                ? found is not null && found.Start == P((ulong)model.VmaStartOf(p)) && found.PageIndexOf(address) == model.Index[p]
                : found is null;
            if (!agrees)
            {
                Assert.Fail($"{context}: Find({address}) gave {found?.ToString() ?? "null"}, model: mapped {model.Mapped[p]}, " +
                    $"VMA start page {(model.Mapped[p] ? model.VmaStartOf(p) : -1)}, index 0x{model.Index[p]:x}");
            }
        }

        Assert.That(set.Find(P(0) - 1UL), Is.Null, context);
        Assert.That(set.Find(P(Pages)), Is.Null, context);
    }

    /// <summary>One record per page; a VMA is a run of mapped pages that starts at a page with Starts set.</summary>
    private sealed class Model
    {
        // Invariant: a mapped page whose predecessor is unmapped (or page 0) has Starts set; unmapped pages
        // have Starts clear; within a VMA identity, protection and flags are equal and indices contiguous.
        public readonly bool[] Mapped = new bool[Pages];
        public readonly bool[] Starts = new bool[Pages];
        public readonly long[] Anon = new long[Pages];
        public readonly ulong[] Index = new ulong[Pages];
        public readonly Protection[] Prot = new Protection[Pages];
        public readonly VmaFlags[] Flags = new VmaFlags[Pages];

        /// <summary>Maps [s, e) as part of the VMA starting at vmaStart, whose page s has index firstIndex.</summary>
        public void Map(int s, int e, int vmaStart, Protection protection, VmaFlags flags, long anon, ulong firstIndex)
        {
            for (var p = s; p < e; p++)
            {
                Mapped[p] = true;
                Starts[p] = p == vmaStart;
                Anon[p] = anon;
                Index[p] = firstIndex + (ulong)(p - s);
                Prot[p] = protection;
                Flags[p] = flags;
            }
        }

        public void Unmap(int s, int e)
        {
            Array.Fill(Mapped, false, s, e - s);
            Array.Fill(Starts, false, s, e - s);
        }

        public int FirstMappedIn(int s, int e)
        {
            for (var p = s; p < e; p++)
            {
                if (Mapped[p])
                {
                    return p;
                }
            }

            return -1;
        }

        public bool SameMapping(int left, int right) =>
            Anon[left] == Anon[right] && Prot[left] == Prot[right] && Flags[left] == Flags[right] && Index[left] + 1 == Index[right];

        public int VmaStartOf(int page)
        {
            while (!Starts[page])
            {
                page--;
            }

            return page;
        }

        public int VmaEndOf(int page)
        {
            do
            {
                page++;
            }
            while (page < Pages && Mapped[page] && !Starts[page]);

            return page;
        }

        public List<(int Start, int End)> Vmas()
        {
            var result = new List<(int, int)>();
            for (var p = 0; p < Pages; p++)
            {
                if (!Mapped[p])
                {
                    continue;
                }

                if (!Starts[p] && (p == 0 || !Mapped[p - 1]))
                {
                    Assert.Fail($"model: page {p} starts a run so it must start a VMA");
                }

                if (Starts[p])
                {
                    var end = VmaEndOf(p);
                    for (var q = p + 1; q < end; q++)
                    {
                        if (!SameMapping(q - 1, q))
                        {
                            Assert.Fail($"model: pages {q - 1} and {q} are one VMA but differ");
                        }

                    }

                    result.Add((p, end));
                }
            }

            return result;
        }
    }
}
