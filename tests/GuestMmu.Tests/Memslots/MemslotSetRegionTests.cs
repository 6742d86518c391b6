using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotSetRegionTests
{
    private const ulong Page = Paging.PageSize;

    private readonly FakeMm _mm = new();

    [Test]
    public void Create_InstallsSlotWithRequestedFields()
    {
        var set = new MemslotSet();
        var change = set.SetRegion(3, MemslotFlags.ReadOnly, new Gpa(0x10_0000), 16 * Page, new Hva(0x7000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Created));
        Assert.That(change.Old, Is.Null);
        Assert.That(change.RequiresZap, Is.False);
        var slot = change.New!;
        Assert.Multiple(() =>
        {
            Assert.That(slot.Id, Is.EqualTo(3));
            Assert.That(slot.BaseGfn, Is.EqualTo(new Gfn(0x100)));
            Assert.That(slot.EndGfn, Is.EqualTo(new Gfn(0x110)));
            Assert.That(slot.Pages, Is.EqualTo(16UL));
            Assert.That(slot.Size, Is.EqualTo(16 * Page));
            Assert.That(slot.UserspaceAddress, Is.EqualTo(new Hva(0x7000_0000)));
            Assert.That(slot.UserspaceEnd, Is.EqualTo(new Hva(0x7001_0000)));
            Assert.That(slot.Mm, Is.SameAs(_mm));
            Assert.That(slot.Flags, Is.EqualTo(MemslotFlags.ReadOnly));
            Assert.That(slot.IsReadOnly, Is.True);
            Assert.That(slot.IsDirtyLogging, Is.False);
            Assert.That(slot.Generation, Is.EqualTo(1));
            Assert.That(change.Generation, Is.EqualTo(1));
            Assert.That(set.Generation, Is.EqualTo(1));
            Assert.That(set.Count, Is.EqualTo(1));
            Assert.That(set.FindById(3), Is.SameAs(slot));
            Assert.That(set.FindByGfn(new Gfn(0x105)), Is.SameAs(slot));
        });
    }

    [Test]
    public void EmptySet_HasGenerationZeroAndNoSlots()
    {
        var set = new MemslotSet();
        Assert.That(set.Generation, Is.Zero);
        Assert.That(set.Count, Is.Zero);
        Assert.That(set.Slots, Is.Empty);
        Assert.That(set.FindByGfn(new Gfn(0)), Is.Null);
        Assert.That(set.FindById(0), Is.Null);
    }

    [Test]
    public void EachChange_BumpsGenerationByOne_AndStampsTheInstalledSlot()
    {
        var set = new MemslotSet();
        var a = set.SetRegion(0, MemslotFlags.None, new Gpa(0), 4 * Page, new Hva(0x1000_0000), _mm);
        var b = set.SetRegion(1, MemslotFlags.None, new Gpa(0x10_0000), 4 * Page, new Hva(0x2000_0000), _mm);
        var moved = set.SetRegion(0, MemslotFlags.None, new Gpa(0x20_0000), 4 * Page, new Hva(0x1000_0000), _mm);
        var flagged = set.SetRegion(1, MemslotFlags.LogDirtyPages, new Gpa(0x10_0000), 4 * Page, new Hva(0x2000_0000), _mm);
        var deleted = set.SetRegion(0, MemslotFlags.None, new Gpa(0), 0, new Hva(0), _mm);

        Assert.That(
            new[] { a.Generation, b.Generation, moved.Generation, flagged.Generation, deleted.Generation },
            Is.EqualTo(new long[] { 1, 2, 3, 4, 5 }));
        Assert.That(a.New!.Generation, Is.EqualTo(1));
        Assert.That(moved.New!.Generation, Is.EqualTo(3));
        Assert.That(flagged.New!.Generation, Is.EqualTo(4));
        Assert.That(set.Generation, Is.EqualTo(5));
        Assert.That(set.FindById(1)!.Generation, Is.EqualTo(4), "an untouched slot keeps its object and generation");
    }

    [Test]
    public void Delete_RemovesTheSlot_AndAsksForAZap()
    {
        var set = new MemslotSet();
        var created = set.SetRegion(5, MemslotFlags.None, new Gpa(0x4000), 2 * Page, new Hva(0x5000_0000), _mm).New!;

        var change = set.SetRegion(5, MemslotFlags.None, new Gpa(0), 0, new Hva(0), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Deleted));
        Assert.That(change.Old, Is.SameAs(created));
        Assert.That(change.New, Is.Null);
        Assert.That(change.RequiresZap, Is.True);
        Assert.That(set.Count, Is.Zero);
        Assert.That(set.FindById(5), Is.Null);
        Assert.That(set.FindByGfn(new Gfn(4)), Is.Null);
        Assert.That(set.Generation, Is.EqualTo(2));
    }

    [Test]
    public void Delete_IgnoresTheGuestAddressAndMmItIsGiven()
    {
        var set = new MemslotSet();
        set.SetRegion(5, MemslotFlags.None, new Gpa(0x4000), 2 * Page, new Hva(0x5000_0000), _mm);

        var change = set.SetRegion(5, MemslotFlags.ReadOnly, new Gpa(0x9999_0000), 0, new Hva(0x1000), null);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Deleted));
        Assert.That(set.Count, Is.Zero);
    }

    [Test]
    public void DeleteRegion_IsSetRegionWithSizeZero()
    {
        var set = new MemslotSet();
        var slot = set.SetRegion(9, MemslotFlags.None, new Gpa(0x4000), Page, new Hva(0x5000_0000), _mm).New!;

        var change = set.DeleteRegion(9);
        var again = set.DeleteRegion(9);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Deleted));
        Assert.That(change.Old, Is.SameAs(slot));
        Assert.That(again.Kind, Is.EqualTo(MemslotChangeKind.None));
        Assert.That(set.Generation, Is.EqualTo(2));
        Assert.That(Assert.Throws<MemslotException>(() => set.DeleteRegion(-3))!.Error, Is.EqualTo(MemslotError.SlotIdOutOfRange));
    }

    [Test]
    public void Delete_OfAnUnknownSlot_IsANoOp()
    {
        var set = new MemslotSet();
        set.SetRegion(1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x1000_0000), _mm);

        var change = set.SetRegion(2, MemslotFlags.None, new Gpa(0), 0, new Hva(0), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.None));
        Assert.That(change.Old, Is.Null);
        Assert.That(change.New, Is.Null);
        Assert.That(change.RequiresZap, Is.False);
        Assert.That(change.Generation, Is.EqualTo(1));
        Assert.That(set.Generation, Is.EqualTo(1));
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void Move_ChangesOnlyTheBase_AndLeavesTheOldObjectIntact()
    {
        var set = new MemslotSet();
        var old = set.SetRegion(2, MemslotFlags.None, new Gpa(0x10_0000), 8 * Page, new Hva(0x6000_0000), _mm).New!;

        var change = set.SetRegion(2, MemslotFlags.None, new Gpa(0x80_0000), 8 * Page, new Hva(0x6000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Moved));
        Assert.That(change.RequiresZap, Is.True);
        Assert.That(change.Old, Is.SameAs(old));
        var moved = change.New!;
        Assert.Multiple(() =>
        {
            Assert.That(moved, Is.Not.SameAs(old));
            Assert.That(moved.Id, Is.EqualTo(2));
            Assert.That(moved.BaseGfn, Is.EqualTo(new Gfn(0x800)));
            Assert.That(moved.UserspaceAddress, Is.EqualTo(old.UserspaceAddress));
            Assert.That(moved.Pages, Is.EqualTo(old.Pages));
            Assert.That(old.BaseGfn, Is.EqualTo(new Gfn(0x100)), "the old slot object is immutable");
            Assert.That(set.FindByGfn(new Gfn(0x100)), Is.Null, "the old range is a hole after the move");
            Assert.That(set.FindByGfn(new Gfn(0x807)), Is.SameAs(moved));
            Assert.That(set.Count, Is.EqualTo(1));
        });
    }

    [Test]
    public void Move_OntoPartOfItsOwnOldRange_IsAllowed()
    {
        var set = new MemslotSet();
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x10_0000), 8 * Page, new Hva(0x6000_0000), _mm);

        var change = set.SetRegion(2, MemslotFlags.None, new Gpa(0x10_1000), 8 * Page, new Hva(0x6000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Moved));
        Assert.That(set.FindByGfn(new Gfn(0x100)), Is.Null);
        Assert.That(set.FindByGfn(new Gfn(0x108))!.Id, Is.EqualTo(2));
    }

    [Test]
    public void Move_MayToggleDirtyLoggingInTheSameCall()
    {
        var set = new MemslotSet();
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x10_0000), Page, new Hva(0x6000_0000), _mm);

        var change = set.SetRegion(2, MemslotFlags.LogDirtyPages, new Gpa(0x20_0000), Page, new Hva(0x6000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Moved));
        Assert.That(change.New!.Flags, Is.EqualTo(MemslotFlags.LogDirtyPages));
    }

    [TestCase(MemslotFlags.None, MemslotFlags.LogDirtyPages)]
    [TestCase(MemslotFlags.LogDirtyPages, MemslotFlags.None)]
    [TestCase(MemslotFlags.ReadOnly, MemslotFlags.ReadOnly | MemslotFlags.LogDirtyPages)]
    [TestCase(MemslotFlags.ReadOnly | MemslotFlags.LogDirtyPages, MemslotFlags.ReadOnly)]
    public void FlagsChange_OfDirtyLogging_KeepsTheRangeAndNeedsNoZap(MemslotFlags before, MemslotFlags after)
    {
        var set = new MemslotSet();
        var old = set.SetRegion(7, before, new Gpa(0x3000), 4 * Page, new Hva(0x4000_0000), _mm).New!;

        var change = set.SetRegion(7, after, new Gpa(0x3000), 4 * Page, new Hva(0x4000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.FlagsChanged));
        Assert.That(change.RequiresZap, Is.False);
        Assert.That(change.Old, Is.SameAs(old));
        Assert.That(change.New!.Flags, Is.EqualTo(after));
        Assert.That(change.New.BaseGfn, Is.EqualTo(old.BaseGfn));
        Assert.That(old.Flags, Is.EqualTo(before));
        Assert.That(set.FindByGfn(new Gfn(3)), Is.SameAs(change.New));
    }

    [Test]
    public void IdenticalRequest_IsANoOp_ReturningTheSameSlot()
    {
        var set = new MemslotSet();
        var slot = set.SetRegion(7, MemslotFlags.LogDirtyPages, new Gpa(0x3000), 4 * Page, new Hva(0x4000_0000), _mm).New!;

        var change = set.SetRegion(7, MemslotFlags.LogDirtyPages, new Gpa(0x3000), 4 * Page, new Hva(0x4000_0000), _mm);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.None));
        Assert.That(change.Old, Is.SameAs(slot));
        Assert.That(change.New, Is.SameAs(slot));
        Assert.That(set.Generation, Is.EqualTo(1));
    }

    [Test]
    public void Recreate_AfterDelete_MayUseANewSizeAddressAndMm()
    {
        var set = new MemslotSet();
        var other = new FakeMm();
        set.SetRegion(1, MemslotFlags.ReadOnly, new Gpa(0x3000), 4 * Page, new Hva(0x4000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, default, 0, default, _mm);

        var change = set.SetRegion(1, MemslotFlags.None, new Gpa(0x3000), 9 * Page, new Hva(0x5000_0000), other);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Created));
        Assert.That(change.New!.Pages, Is.EqualTo(9UL));
        Assert.That(change.New.Mm, Is.SameAs(other));
    }

    [Test]
    public void Slots_AreInGuestPhysicalOrder_WhateverTheCreationOrderAndIds()
    {
        var set = new MemslotSet();
        set.SetRegion(9, MemslotFlags.None, new Gpa(0x30_0000), Page, new Hva(0x1000_0000), _mm);
        set.SetRegion(0, MemslotFlags.None, new Gpa(0x50_0000), Page, new Hva(0x2000_0000), _mm);
        set.SetRegion(4, MemslotFlags.None, new Gpa(0x10_0000), Page, new Hva(0x3000_0000), _mm);
        set.SetRegion(2, MemslotFlags.None, new Gpa(0x40_0000), Page, new Hva(0x4000_0000), _mm);

        Assert.That(set.Slots.Select(s => s.Id), Is.EqualTo(new[] { 4, 9, 2, 0 }));
        Assert.That(set.Count, Is.EqualTo(4));
        Assert.That(new[] { 0, 2, 4, 9 }.Select(id => set.FindById(id)!.Id), Is.EqualTo(new[] { 0, 2, 4, 9 }));
        Assert.That(set.FindById(1), Is.Null);
        Assert.That(set.FindById(-1), Is.Null);
    }

    [Test]
    public void OldSnapshot_KeepsAnsweringForItsGeneration()
    {
        var set = new MemslotSet();
        set.SetRegion(0, MemslotFlags.None, new Gpa(0), 4 * Page, new Hva(0x1000_0000), _mm);
        var before = set.Current;

        set.SetRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 4 * Page, new Hva(0x1000_0000), _mm);
        set.SetRegion(1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x2000_0000), _mm);

        Assert.That(before.Generation, Is.EqualTo(1));
        Assert.That(before.Count, Is.EqualTo(1));
        Assert.That(before.FindByGfn(new Gfn(2))!.Id, Is.Zero);
        Assert.That(before.FindByGfn(new Gfn(0x100)), Is.Null);
        Assert.That(set.Current.FindByGfn(new Gfn(0))!.Id, Is.EqualTo(1));
        Assert.That(set.Current.FindByGfn(new Gfn(0x100))!.Id, Is.Zero);
    }

    [Test]
    public void ChangeAndSlot_DescribeThemselvesOnOneLine()
    {
        var set = new MemslotSet();
        var change = set.SetRegion(3, MemslotFlags.ReadOnly, new Gpa(0x10_0000), 16 * Page, new Hva(0x7000_0000), _mm);

        Assert.That(change.New!.ToString(), Does.Contain("memslot 3").And.Contain("gpa:0x100000").And.Contain("0x70000000").And.Contain("ReadOnly"));
        Assert.That(change.ToString(), Does.StartWith("Created gen 1"));
    }
}
