using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotOverlapTests
{
    private const ulong Page = Paging.PageSize;

    private readonly FakeMm _mm = new();

    /// <summary>Slot 1 covers gfns [0x100, 0x110).</summary>
    private MemslotSet WithMiddleSlot()
    {
        var set = new MemslotSet();
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x1000_0000), _mm);
        return set;
    }

    [Test]
    public void AdjacentSlots_BelowAndAbove_AreAllowed()
    {
        var set = WithMiddleSlot();
        var below = set.SetRegion(2, MemslotFlags.None, new Gpa(0xF_0000), 16 * Page, new Hva(0x2000_0000), _mm);
        var above = set.SetRegion(3, MemslotFlags.None, new Gpa(0x11_0000), 16 * Page, new Hva(0x3000_0000), _mm);

        Assert.That(below.Kind, Is.EqualTo(MemslotChangeKind.Created));
        Assert.That(above.Kind, Is.EqualTo(MemslotChangeKind.Created));
        Assert.That(set.FindByGfn(new Gfn(0xFF))!.Id, Is.EqualTo(2));
        Assert.That(set.FindByGfn(new Gfn(0x100))!.Id, Is.EqualTo(1));
        Assert.That(set.FindByGfn(new Gfn(0x10F))!.Id, Is.EqualTo(1));
        Assert.That(set.FindByGfn(new Gfn(0x110))!.Id, Is.EqualTo(3));
    }

    [TestCase(0x0F_1000UL, 16UL, TestName = "Overlap_ByOnePageAtTheStart")]
    [TestCase(0x10_F000UL, 16UL, TestName = "Overlap_ByOnePageAtTheEnd")]
    [TestCase(0x10_4000UL, 2UL, TestName = "Overlap_NewInsideExisting")]
    [TestCase(0x0F_0000UL, 64UL, TestName = "Overlap_NewContainsExisting")]
    [TestCase(0x10_0000UL, 16UL, TestName = "Overlap_SameRange")]
    [TestCase(0x10_0000UL, 1UL, TestName = "Overlap_FirstPageOnly")]
    [TestCase(0x10_F000UL, 1UL, TestName = "Overlap_LastPageOnly")]
    public void OverlappingCreate_IsRejected_NamingBothRanges(ulong gpa, ulong pages)
    {
        var set = WithMiddleSlot();

        var ex = Assert.Throws<MemslotException>(
            () => set.SetRegion(2, MemslotFlags.None, new Gpa(gpa), pages * Page, new Hva(0x2000_0000), _mm))!;

        Assert.That(ex.Error, Is.EqualTo(MemslotError.Overlap));
        Assert.That(ex.SlotId, Is.EqualTo(2));
        Assert.That(ex.Message, Does.Contain($"gpa:0x{gpa:x}"));
        Assert.That(ex.Message, Does.Contain("overlaps memslot 1 at [gpa:0x100000, gpa:0x110000)"));
        Assert.That(set.Count, Is.EqualTo(1));
        Assert.That(set.Generation, Is.EqualTo(1));
    }

    [Test]
    public void MoveOntoAnotherSlot_IsRejected_AndKeepsTheSlotWhereItWas()
    {
        var set = WithMiddleSlot();
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x40_0000), 4 * Page, new Hva(0x2000_0000), _mm);

        var ex = Assert.Throws<MemslotException>(
            () => set.SetRegion(2, MemslotFlags.None, new Gpa(0x10_E000), 4 * Page, new Hva(0x2000_0000), _mm))!;

        Assert.That(ex.Error, Is.EqualTo(MemslotError.Overlap));
        Assert.That(ex.Message, Does.Contain("overlaps memslot 1"));
        Assert.That(set.FindById(2)!.BaseGfn, Is.EqualTo(new Gfn(0x400)));
    }

    [Test]
    public void MoveIntoAnExactlyFittingHole_IsAllowed()
    {
        var set = WithMiddleSlot();
        set.SetRegion(3, MemslotFlags.None, new Gpa(0x11_4000), 4 * Page, new Hva(0x3000_0000), _mm);
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x40_0000), 4 * Page, new Hva(0x2000_0000), _mm);

        var change = set.SetRegion(2, MemslotFlags.None, new Gpa(0x11_0000), 4 * Page, new Hva(0x2000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Moved));
        Assert.That(set.Slots.Select(s => s.Id), Is.EqualTo(new[] { 1, 2, 3 }));
    }

    [Test]
    public void SlotsSharingHostMemory_AreAllowed()
    {
        // KVM allows aliases: two guest ranges backed by the same host pages.
        var set = WithMiddleSlot();
        var alias = set.SetRegion(2, MemslotFlags.None, new Gpa(0x80_0000), 16 * Page, new Hva(0x1000_0000), _mm);
        Assert.That(alias.Kind, Is.EqualTo(MemslotChangeKind.Created));
        Assert.That(set.FindByGfn(new Gfn(0x800))!.GfnToHva(new Gfn(0x800)), Is.EqualTo(set.FindByGfn(new Gfn(0x100))!.GfnToHva(new Gfn(0x100))));
    }

    [Test]
    public void RandomCreates_AreRejectedExactlyWhenTheyOverlap()
    {
        var random = new Random(4242);
        var set = new MemslotSet();
        var model = new List<(ulong Start, ulong End)>();
        var accepted = 0;
        for (var id = 0; id < 400; id++)
        {
            var start = (ulong)random.Next(0, 2000);
            var pages = (ulong)random.Next(1, 24);
            var overlaps = model.Any(r => start < r.End && r.Start < start + pages);

            try
            {
                set.SetRegion(id, MemslotFlags.None, new Gfn(start).ToGpa(), pages * Page, new Hva(0x1000_0000), _mm);
                Assert.That(overlaps, Is.False, $"gfns [0x{start:x}, +{pages}) overlap a slot but were accepted");
                model.Add((start, start + pages));
                accepted++;
            }
            catch (MemslotException ex) when (ex.Error == MemslotError.Overlap)
            {
                Assert.That(overlaps, Is.True, $"gfns [0x{start:x}, +{pages}) overlap nothing but were rejected: {ex.Message}");
            }
        }

        Assert.That(accepted, Is.GreaterThan(50), "the seed should produce a mix of accepted and rejected slots");
        Assert.That(set.Count, Is.EqualTo(accepted));
    }
}
