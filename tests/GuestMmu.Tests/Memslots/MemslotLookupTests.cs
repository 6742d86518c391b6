using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotLookupTests
{
    private const ulong Page = Paging.PageSize;

    private readonly FakeMm _mm = new();

    [Test]
    public void FindByGfn_AtSlotEdgesAndInHoles()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0), 0xA0 * Page, new Hva(0x1000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x10_0000), 0x100 * Page, new Hva(0x2000_0000), _mm);
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x20_0000), Page, new Hva(0x3000_0000), _mm);
        set.SetRegion(3, MemslotFlags.None, new Gpa(0x20_1000), 2 * Page, new Hva(0x4000_0000), _mm);

        int? Id(ulong gfn) => set.FindByGfn(new Gfn(gfn))?.Id;

        Assert.Multiple(() =>
        {
            Assert.That(Id(0), Is.EqualTo(0));
            Assert.That(Id(0x9F), Is.EqualTo(0));
            Assert.That(Id(0xA0), Is.Null, "first frame after slot 0");
            Assert.That(Id(0xFF), Is.Null, "last frame of the hole");
            Assert.That(Id(0x100), Is.EqualTo(1));
            Assert.That(Id(0x1FF), Is.EqualTo(1));
            Assert.That(Id(0x200), Is.EqualTo(2), "adjacent slots: first frame of the second");
            Assert.That(Id(0x201), Is.EqualTo(3));
            Assert.That(Id(0x202), Is.EqualTo(3));
            Assert.That(Id(0x203), Is.Null);
            Assert.That(Id(ulong.MaxValue), Is.Null);
        });
    }

    [Test]
    public void FindByGfn_CacheNeverAnswersForAFrameOutsideTheCachedSlot()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x1000), Page, new Hva(0x1000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x3000), Page, new Hva(0x2000_0000), _mm);

        for (var i = 0; i < 3; i++)
        {
            Assert.That(set.FindByGfn(new Gfn(1))!.Id, Is.Zero);
            Assert.That(set.FindByGfn(new Gfn(2)), Is.Null);
            Assert.That(set.FindByGfn(new Gfn(1))!.Id, Is.Zero);
            Assert.That(set.FindByGfn(new Gfn(3))!.Id, Is.EqualTo(1));
            Assert.That(set.FindByGfn(new Gfn(0)), Is.Null);
            Assert.That(set.FindByGfn(new Gfn(4)), Is.Null);
        }
    }

    [Test]
    public void FindByGfn_AfterAMoveOrDelete_NeverReturnsTheOldSlot()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x1000), Page, new Hva(0x1000_0000), _mm);
        Assert.That(set.FindByGfn(new Gfn(1)), Is.Not.Null);

        set.SetRegion(0, MemslotFlags.None, new Gpa(0x5000), Page, new Hva(0x1000_0000), _mm);
        Assert.That(set.FindByGfn(new Gfn(1)), Is.Null);
        Assert.That(set.FindByGfn(new Gfn(5))!.BaseGfn, Is.EqualTo(new Gfn(5)));

        set.SetRegion(0, MemslotFlags.None, default, 0, default, _mm);
        Assert.That(set.FindByGfn(new Gfn(5)), Is.Null);
    }

    [TestCase(1)]
    [TestCase(7)]
    [TestCase(300)]
    public void FindByGfn_MatchesBruteForce_OnRandomLayouts(int seed)
    {
        var random = new Random(seed);
        var set = new MemslotSet();
        var layout = RandomLayout(random, 150);
        foreach (var (id, start, pages) in layout.OrderBy(_ => random.Next()))
        {
            set.SetRegion(id, MemslotFlags.None, new Gfn(start).ToGpa(), pages * Page, new Hva(0x1000_0000 + (start * Page)), _mm);
        }

        CheckAgainstBruteForce(set, layout, random);

        // Churn: delete a third, move some into the space past the end, and check again.
        var live = layout.ToList();
        var top = live.Max(s => s.Start + s.Pages) + 10;
        foreach (var victim in live.Where(_ => random.Next(3) == 0).ToList())
        {
            set.SetRegion(victim.Id, MemslotFlags.None, default, 0, default, _mm);
            live.Remove(victim);
        }

        for (var i = 0; i < live.Count; i += 4)
        {
            var moved = live[i] with { Start = top + (ulong)random.Next(0, 3) };
            var old = set.FindById(moved.Id)!;
            set.SetRegion(moved.Id, MemslotFlags.None, new Gfn(moved.Start).ToGpa(), moved.Pages * Page, old.UserspaceAddress, _mm);
            live[i] = moved;
            top = moved.Start + moved.Pages;
        }

        CheckAgainstBruteForce(set, live, random);
    }

    [Test]
    public void FindById_FindsEveryLiveSlotAndNothingElse()
    {
        var set = new MemslotSet();
        var ids = new[] { 32763, 0, 17, 5, 1000 };
        for (var i = 0; i < ids.Length; i++)
        {
            set.SetRegion(ids[i], MemslotFlags.None, new Gpa((ulong)i * 0x10_0000), Page, new Hva(0x1000_0000), _mm);
        }

        foreach (var id in ids)
        {
            Assert.That(set.FindById(id)!.Id, Is.EqualTo(id));
        }

        foreach (var id in new[] { -1, 1, 4, 6, 16, 18, 999, 1001, 32762, 32764 })
        {
            Assert.That(set.FindById(id), Is.Null, $"id {id}");
        }
    }

    /// <summary>Disjoint slots with random gaps (including none, so some are adjacent) and random ids.</summary>
    private static List<(int Id, ulong Start, ulong Pages)> RandomLayout(Random random, int count)
    {
        var ids = Enumerable.Range(0, 4 * count).OrderBy(_ => random.Next()).Take(count).ToArray();
        var layout = new List<(int, ulong, ulong)>();
        var cursor = (ulong)random.Next(0, 4);
        foreach (var id in ids)
        {
            cursor += (ulong)(random.Next(3) == 0 ? 0 : random.Next(1, 6));
            var pages = (ulong)random.Next(1, 9);
            layout.Add((id, cursor, pages));
            cursor += pages;
        }

        return layout;
    }

    private static void CheckAgainstBruteForce(MemslotSet set, IReadOnlyList<(int Id, ulong Start, ulong Pages)> layout, Random random)
    {
        Assert.That(set.Count, Is.EqualTo(layout.Count));
        var top = layout.Max(s => s.Start + s.Pages) + 5;

        // Every frame in order, then random order (exercises the last-hit cache both ways).
        var frames = Enumerable.Range(0, (int)top).Select(i => (ulong)i).ToList();
        frames.AddRange(frames.OrderBy(_ => random.Next()).ToList());
        foreach (var gfn in frames)
        {
            var expected = layout.Where(s => gfn >= s.Start && gfn < s.Start + s.Pages).Select(s => (int?)s.Id).SingleOrDefault();
            var found = set.FindByGfn(new Gfn(gfn));
            Assert.That(found?.Id, Is.EqualTo(expected), $"gfn 0x{gfn:x}");
            if (found is not null)
            {
                Assert.That(found.ContainsGfn(new Gfn(gfn)), Is.True);
            }
        }

        var starts = set.Slots.Select(s => s.BaseGfn.Value).ToList();
        Assert.That(starts, Is.Ordered);
    }
}
