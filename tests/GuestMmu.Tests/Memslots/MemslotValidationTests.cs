using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotValidationTests
{
    private const ulong Page = Paging.PageSize;
    private const ulong UserEnd = 1UL << 47;
    private const ulong GpaEnd = 1UL << 52;

    private readonly FakeMm _mm = new();

    private static MemslotException Rejected(TestDelegate call, MemslotError error, params string[] fragments)
    {
        var ex = Assert.Throws<MemslotException>(call)!;
        Assert.That(ex.Error, Is.EqualTo(error), ex.Message);
        foreach (var fragment in fragments)
        {
            Assert.That(ex.Message, Does.Contain(fragment));
        }

        Assert.That(ex, Is.InstanceOf<ArgumentException>());
        Assert.That(ex.ParamName, Is.Not.Null.And.Not.Empty);
        return ex;
    }

    [Test]
    public void UnknownFlagBits_AreRejected_NamingTheBits()
    {
        var set = new MemslotSet();
        var ex = Rejected(
            () => set.SetRegion(0, (MemslotFlags)0x6, new Gpa(0), Page, new Hva(0x1000), _mm),
            MemslotError.UnknownFlags,
            "0x6",
            "0x4");
        Assert.That(ex.SlotId, Is.Zero);
        Assert.That(set.Generation, Is.Zero);
    }

    [Test]
    public void UnalignedSize_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), 0x1001, new Hva(0x1000), _mm),
            MemslotError.UnalignedSize,
            "0x1001",
            "multiple of 4096");
    }

    [Test]
    public void UnalignedGuestPhysicalAddress_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0x1800), Page, new Hva(0x1000), _mm),
            MemslotError.UnalignedGuestPhysicalAddress,
            "gpa:0x1800",
            "page-aligned");
    }

    [Test]
    public void UnalignedUserspaceAddress_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x7000_0123), _mm),
            MemslotError.UnalignedUserspaceAddress,
            "0x70000123",
            "page-aligned");
    }

    [Test]
    public void Delete_StillChecksAlignment_AsKvmDoes()
    {
        var set = new MemslotSet();
        set.SetRegion(1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x1000), _mm);
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0x10), 0, new Hva(0), _mm),
            MemslotError.UnalignedGuestPhysicalAddress,
            "gpa:0x10");
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void UserspaceRange_EndingBeyond47Bits_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), 2 * Page, new Hva(UserEnd - Page), _mm),
            MemslotError.UserspaceRangeOutOfBounds,
            "0x7ffffffff000",
            "0x2000",
            "47-bit");
    }

    [Test]
    public void UserspaceRange_ThatWraps_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), 2 * Page, new Hva(0xffff_ffff_ffff_f000), _mm),
            MemslotError.UserspaceRangeOutOfBounds,
            "0xfffffffffffff000");
    }

    [Test]
    public void UserspaceRange_EndingExactlyAt47Bits_IsAccepted()
    {
        var set = new MemslotSet();
        var slot = set.SetRegion(1, MemslotFlags.None, new Gpa(0), 2 * Page, new Hva(UserEnd - 2 * Page), _mm).New!;
        Assert.That(slot.UserspaceEnd, Is.EqualTo(MemslotSet.UserSpaceEnd));
    }

    [Test]
    public void UserSpaceEnd_IsTheHostProcessLimit()
    {
        Assert.That(MemslotSet.UserSpaceEnd, Is.EqualTo(Hypervisor.HostMm.Mm.UserSpaceEnd));
        Assert.That(MemslotSet.UserSpaceEnd.Value, Is.EqualTo(UserEnd));
    }

    [TestCase(-1)]
    [TestCase(MemslotSet.MaxSlots)]
    [TestCase(int.MaxValue)]
    public void SlotId_OutOfRange_IsRejected(int id)
    {
        var set = new MemslotSet();
        var ex = Rejected(
            () => set.SetRegion(id, MemslotFlags.None, new Gpa(0), Page, new Hva(0x1000), _mm),
            MemslotError.SlotIdOutOfRange,
            $"memslot id {id}",
            $"0 to {MemslotSet.MaxSlots - 1}");
        Assert.That(ex.SlotId, Is.EqualTo(id));
    }

    [Test]
    public void SlotId_OutOfRange_IsRejectedForDeleteToo()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(MemslotSet.MaxSlots, MemslotFlags.None, new Gpa(0), 0, new Hva(0), _mm),
            MemslotError.SlotIdOutOfRange,
            "32764");
    }

    [Test]
    public void HighestSlotId_IsAccepted()
    {
        Assert.That(MemslotSet.MaxSlots, Is.EqualTo(32764), "x86 KVM_USER_MEM_SLOTS");
        var set = new MemslotSet();
        var change = set.SetRegion(MemslotSet.MaxSlots - 1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x1000), _mm);
        Assert.That(change.New!.Id, Is.EqualTo(32763));
    }

    [Test]
    public void GuestRange_EndingBeyond52Bits_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(GpaEnd - Page), 2 * Page, new Hva(0x1000), _mm),
            MemslotError.GuestPhysicalRangeOutOfBounds,
            "gpa:0xffffffffff000",
            "0x2000",
            "52-bit");
    }

    [Test]
    public void GuestRange_ThatWraps_IsRejected()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0xffff_ffff_ffff_f000), 2 * Page, new Hva(0x1000), _mm),
            MemslotError.GuestPhysicalRangeOutOfBounds,
            "gpa:0xfffffffffffff000");
    }

    [Test]
    public void GuestRange_EndingExactlyAt52Bits_IsAccepted()
    {
        var set = new MemslotSet();
        var slot = set.SetRegion(1, MemslotFlags.None, new Gpa(GpaEnd - Page), Page, new Hva(0x1000), _mm).New!;
        Assert.That(slot.EndGfn.ToGpa(), Is.EqualTo(MemslotSet.GuestPhysicalEnd));
        Assert.That(set.FindByGfn(new Gfn((GpaEnd >> 12) - 1)), Is.SameAs(slot));
    }

    [Test]
    public void SlotAbovePerSlotPageLimit_IsRejected()
    {
        var set = new MemslotSet();
        var size = (MemslotSet.MaxPagesPerSlot + 1) * Page;
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), size, new Hva(0x1000), _mm),
            MemslotError.TooManyPages,
            "2147483648 pages",
            "2147483647");
    }

    [Test]
    public void SlotAtPerSlotPageLimit_IsAccepted()
    {
        var set = new MemslotSet();
        var slot = set.SetRegion(1, MemslotFlags.None, new Gpa(0), MemslotSet.MaxPagesPerSlot * Page, new Hva(0x1000), _mm).New!;
        Assert.That(slot.Pages, Is.EqualTo(MemslotSet.MaxPagesPerSlot));
    }

    [Test]
    public void NullBacking_IsRejectedForCreate()
    {
        var set = new MemslotSet();
        Rejected(
            () => set.SetRegion(1, MemslotFlags.None, new Gpa(0), Page, new Hva(0x1000), null),
            MemslotError.MissingMm,
            "backing is null");
    }

    [Test]
    public void ExistingSlot_CannotChangeItsSize()
    {
        var set = WithSlot(out _);
        Rejected(
            () => set.SetRegion(4, MemslotFlags.None, new Gpa(0x10_0000), 8 * Page, new Hva(0x4000_0000), _mm),
            MemslotError.SizeChange,
            "0x8000",
            "0x4000",
            "delete it and create it again");
        AssertUnchanged(set);
    }

    [Test]
    public void ExistingSlot_CannotChangeItsUserspaceAddress()
    {
        var set = WithSlot(out _);
        Rejected(
            () => set.SetRegion(4, MemslotFlags.None, new Gpa(0x10_0000), 4 * Page, new Hva(0x5000_0000), _mm),
            MemslotError.UserspaceAddressChange,
            "0x50000000",
            "0x40000000");
        AssertUnchanged(set);
    }

    [Test]
    public void ExistingSlot_CannotChangeItsUserspaceAddressEvenWhileMoving()
    {
        var set = WithSlot(out _);
        Rejected(
            () => set.SetRegion(4, MemslotFlags.None, new Gpa(0x90_0000), 4 * Page, new Hva(0x5000_0000), _mm),
            MemslotError.UserspaceAddressChange,
            "0x50000000");
        AssertUnchanged(set);
    }

    [Test]
    public void ExistingSlot_CannotChangeItsMm()
    {
        var set = WithSlot(out _);
        var other = new FakeMm();
        Rejected(
            () => set.SetRegion(4, MemslotFlags.None, new Gpa(0x10_0000), 4 * Page, new Hva(0x4000_0000), other),
            MemslotError.MmChange,
            $"mm {other.Id}",
            $"mm {_mm.Id}");
        AssertUnchanged(set);
    }

    [Test]
    public void ExistingSlot_CannotTurnReadOnlyOn()
    {
        var set = WithSlot(out _);
        Rejected(
            () => set.SetRegion(4, MemslotFlags.ReadOnly, new Gpa(0x10_0000), 4 * Page, new Hva(0x4000_0000), _mm),
            MemslotError.ReadOnlyChange,
            "ReadOnly on",
            "fixed for a slot's lifetime");
        AssertUnchanged(set);
    }

    [Test]
    public void ExistingSlot_CannotTurnReadOnlyOff()
    {
        var set = new MemslotSet();
        set.SetRegion(4, MemslotFlags.ReadOnly, new Gpa(0x10_0000), 4 * Page, new Hva(0x4000_0000), _mm);
        Rejected(
            () => set.SetRegion(4, MemslotFlags.LogDirtyPages, new Gpa(0x10_0000), 4 * Page, new Hva(0x4000_0000), _mm),
            MemslotError.ReadOnlyChange,
            "ReadOnly off");
        Assert.That(set.FindById(4)!.Flags, Is.EqualTo(MemslotFlags.ReadOnly));
    }

    [Test]
    public void SeveralBrokenRules_ReportTheFirstInKvmOrder()
    {
        var set = new MemslotSet();

        // Unaligned GPA and a bad slot id: KVM checks alignment before the id.
        Rejected(
            () => set.SetRegion(-5, MemslotFlags.None, new Gpa(0x123), Page, new Hva(0x1000), _mm),
            MemslotError.UnalignedGuestPhysicalAddress);

        // Unknown flags and an unaligned size: flags come first.
        Rejected(
            () => set.SetRegion(0, (MemslotFlags)0x80, new Gpa(0), 0x10, new Hva(0x1000), _mm),
            MemslotError.UnknownFlags);
    }

    private MemslotSet WithSlot(out Memslot slot)
    {
        var set = new MemslotSet();
        slot = set.SetRegion(4, MemslotFlags.None, new Gpa(0x10_0000), 4 * Page, new Hva(0x4000_0000), _mm).New!;
        return set;
    }

    private void AssertUnchanged(MemslotSet set)
    {
        Assert.That(set.Generation, Is.EqualTo(1), "a rejected request publishes nothing");
        var slot = set.FindById(4)!;
        Assert.That(slot.BaseGfn, Is.EqualTo(new Gfn(0x100)));
        Assert.That(slot.Pages, Is.EqualTo(4UL));
        Assert.That(slot.UserspaceAddress, Is.EqualTo(new Hva(0x4000_0000)));
        Assert.That(slot.Mm, Is.SameAs(_mm));
        Assert.That(slot.Flags, Is.EqualTo(MemslotFlags.None));
    }
}
