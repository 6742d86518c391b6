using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotHvaTests
{
    private const ulong Page = Paging.PageSize;

    private readonly FakeMm _mm = new();
    private readonly FakeMm _otherMm = new();

    private static List<(int Id, ulong Start, ulong End)> Hits(MemslotSet set, IMm mm, ulong start, ulong end)
    {
        var hits = new List<(int, ulong, ulong)>();
        foreach (var range in set.OverlappingHva(mm, new Hva(start), new Hva(end)))
        {
            hits.Add((range.Slot.Id, range.Start.Value, range.End.Value));
        }

        return hits;
    }

    [Test]
    public void Query_InsideOneSlot_YieldsItsClampedFrames()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);

        Assert.That(Hits(set, _mm, 0x4000_3000, 0x4000_5000), Is.EqualTo(new[] { (0, 0x103UL, 0x105UL) }));
    }

    [Test]
    public void Query_WithUnalignedEnds_IncludesEveryTouchedPage()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);

        // [0x40000800, 0x40002001) touches pages 0, 1 and 2 of the slot: the end rounds up.
        Assert.That(Hits(set, _mm, 0x4000_0800, 0x4000_2001), Is.EqualTo(new[] { (0, 0x100UL, 0x103UL) }));

        // A one-byte range (test_young's [addr, addr + 1)) is one page.
        Assert.That(Hits(set, _mm, 0x4000_5FFF, 0x4000_6000), Is.EqualTo(new[] { (0, 0x105UL, 0x106UL) }));
    }

    [Test]
    public void Query_LargerThanTheSlot_ClampsToTheWholeSlot()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);

        Assert.That(Hits(set, _mm, 0, MemslotSet.UserSpaceEnd.Value), Is.EqualTo(new[] { (0, 0x100UL, 0x110UL) }));
        Assert.That(Hits(set, _mm, 0x3FFF_F001, 0x4000_1001), Is.EqualTo(new[] { (0, 0x100UL, 0x102UL) }));
    }

    [Test]
    public void Query_TouchingButNotEnteringTheSlot_YieldsNothing()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);

        Assert.That(Hits(set, _mm, 0x3FFF_0000, 0x4000_0000), Is.Empty, "ends exactly at the slot start");
        Assert.That(Hits(set, _mm, 0x4001_0000, 0x4002_0000), Is.Empty, "starts exactly at the slot end");
        Assert.That(Hits(set, _mm, 0x4000_FFFF, 0x4001_0000), Is.EqualTo(new[] { (0, 0x10FUL, 0x110UL) }), "last byte");
    }

    [Test]
    public void SlotsAliasingTheSameHostRange_AreAllYielded_InHostAddressOrder()
    {
        // Three slots of one mm whose host ranges overlap: KVM allows this (aliases).
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_8000), _mm); // host [..8000, ..18000)
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x80_0000), 16 * Page, new Hva(0x4000_0000), _mm); // host [..0000, ..10000)
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x90_0000), 4 * Page, new Hva(0x4000_A000), _mm);  // host [..A000, ..E000)

        var hits = Hits(set, _mm, 0x4000_9000, 0x4000_B000);

        Assert.That(hits, Is.EqualTo(new[]
        {
            (1, 0x809UL, 0x80BUL),
            (0, 0x101UL, 0x103UL),
            (2, 0x900UL, 0x901UL),
        }));
    }

    [Test]
    public void SlotsOfOtherMms_AreSkipped()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x20_0000), 16 * Page, new Hva(0x4000_0000), _otherMm);
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x30_0000), 16 * Page, new Hva(0x4000_4000), _otherMm);

        Assert.That(Hits(set, _mm, 0x4000_0000, 0x4000_8000), Is.EqualTo(new[] { (0, 0x100UL, 0x108UL) }));
        Assert.That(Hits(set, _otherMm, 0x4000_0000, 0x4000_8000), Is.EqualTo(new[] { (1, 0x200UL, 0x208UL), (2, 0x300UL, 0x304UL) }));
        Assert.That(Hits(set, new FakeMm(), 0, 1UL << 47), Is.Empty);
    }

    [Test]
    public void Query_OnEmptySet_YieldsNothing()
    {
        Assert.That(Hits(new MemslotSet(), _mm, 0, 1UL << 47), Is.Empty);
    }

    [Test]
    public void Query_SeesTheSnapshotItStartedOn()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x20_0000), 16 * Page, new Hva(0x4000_0000), _mm);

        var seen = new List<int>();
        foreach (var range in set.OverlappingHva(_mm, new Hva(0x4000_0000), new Hva(0x4001_0000)))
        {
            seen.Add(range.Slot.Id);
            set.SetRegion(7 + seen.Count, MemslotFlags.None, new Gpa(0x100_0000 * (ulong)seen.Count), Page, new Hva(0x4000_0000), _mm);
            set.SetRegion(1, MemslotFlags.None, default, 0, default, _mm);
        }

        Assert.That(seen, Is.EqualTo(new[] { 0, 1 }), "a walk is not disturbed by changes published during it");
        Assert.That(Hits(set, _mm, 0x4000_0000, 0x4001_0000).Select(h => h.Id), Is.EqualTo(new[] { 0, 8, 9 }));
    }

    [Test]
    public void Query_MatchesBruteForceClamping_OnRandomSlots()
    {
        var random = new Random(99);
        var set = new MemslotSet();
        var mms = new[] { _mm, _otherMm };
        for (var id = 0; id < 120; id++)
        {
            var hva = 0x1000_0000UL + ((ulong)random.Next(0, 512) * Page);
            var pages = (ulong)random.Next(1, 40);
            set.SetRegion(id, MemslotFlags.None, new Gpa((ulong)id * 0x10_0000), pages * Page, new Hva(hva), mms[random.Next(2)]);
        }

        for (var q = 0; q < 2000; q++)
        {
            var mm = mms[random.Next(2)];
            var start = 0x1000_0000UL - 0x3000 + (ulong)random.Next(0, 0x23_0000);
            var end = start + 1 + (ulong)random.Next(0, random.Next(2) == 0 ? 0x3000 : 0x8_0000);

            var expected = set.Slots
                .Where(s => ReferenceEquals(s.Mm, mm) && start < s.UserspaceEnd.Value && s.UserspaceAddress.Value < end)
                .Select(s =>
                {
                    var lo = Math.Max(start, s.UserspaceAddress.Value);
                    var hi = Math.Min(end, s.UserspaceEnd.Value);
                    var first = s.BaseGfn.Value + ((lo - s.UserspaceAddress.Value) / Page);
                    var after = s.BaseGfn.Value + ((hi - s.UserspaceAddress.Value + Page - 1) / Page);
                    return (s.Id, first, after);
                })
                .OrderBy(h => h.Id)
                .ToList();

            var actual = Hits(set, mm, start, end);
            Assert.That(actual.Select(h => set.FindById(h.Id)!.UserspaceAddress.Value), Is.Ordered, "host address order");
            Assert.That(actual.OrderBy(h => h.Id).ToList(), Is.EqualTo(expected), $"query [0x{start:x}, 0x{end:x})");
        }
    }

    [Test]
    public void Query_RejectsAnEmptyOrReversedRange_AndANullMm()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0), Page, new Hva(0x4000_0000), _mm);

        var empty = Assert.Throws<InvalidRangeException>(() => set.OverlappingHva(_mm, new Hva(0x4000_0000), new Hva(0x4000_0000)))!;
        Assert.That(empty.Message, Does.Contain("[0x40000000, 0x40000000)").And.Contain("empty or reversed"));
        Assert.Throws<InvalidRangeException>(() => set.OverlappingHva(_mm, new Hva(0x5000), new Hva(0x4000)));
        Assert.Throws<ArgumentNullException>(() => set.OverlappingHva(null!, new Hva(0), new Hva(0x1000)));
    }

    [Test]
    public void Enumerator_CurrentOutsideAnItem_Throws()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0), Page, new Hva(0x4000_0000), _mm);
        var walk = set.OverlappingHva(_mm, new Hva(0x4000_0000), new Hva(0x4000_1000));

        Assert.Throws<InvalidOperationException>(() => _ = walk.Current);
        Assert.That(walk.MoveNext(), Is.True);
        Assert.That(walk.Current.Pages, Is.EqualTo(1UL));
        Assert.That(walk.MoveNext(), Is.False);
        Assert.Throws<InvalidOperationException>(() => _ = walk.Current);
    }
}
