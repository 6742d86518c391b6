using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotConversionTests
{
    private const ulong Page = Paging.PageSize;

    private Memslot _slot = null!;

    /// <summary>gfns [0x100, 0x110) backed by host [0x40000000, 0x40010000).</summary>
    [SetUp]
    public void CreateSlot() =>
        _slot = new MemslotSet().SetRegion(6, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, new Hva(0x4000_0000), new FakeMm()).New!;

    [Test]
    public void GfnToHva_MapsEachFrameToItsHostPage()
    {
        Assert.That(_slot.GfnToHva(new Gfn(0x100)), Is.EqualTo(new Hva(0x4000_0000)));
        Assert.That(_slot.GfnToHva(new Gfn(0x101)), Is.EqualTo(new Hva(0x4000_1000)));
        Assert.That(_slot.GfnToHva(new Gfn(0x10F)), Is.EqualTo(new Hva(0x4000_F000)));
    }

    [TestCase(0xFFUL)]
    [TestCase(0x110UL)]
    [TestCase(0UL)]
    [TestCase(ulong.MaxValue)]
    public void GfnToHva_OutsideTheSlot_Throws(ulong gfn)
    {
        var ex = Assert.Throws<MemslotException>(() => _slot.GfnToHva(new Gfn(gfn)))!;
        Assert.That(ex.Error, Is.EqualTo(MemslotError.GfnOutsideSlot));
        Assert.That(ex.Message, Does.Contain($"gfn:0x{gfn:x}").And.Contain("memslot 6 [gfn:0x100, gfn:0x110)"));
    }

    [Test]
    public void HvaToGfn_RoundsDownInsideAPage()
    {
        Assert.That(_slot.HvaToGfn(new Hva(0x4000_0000)), Is.EqualTo(new Gfn(0x100)));
        Assert.That(_slot.HvaToGfn(new Hva(0x4000_0FFF)), Is.EqualTo(new Gfn(0x100)));
        Assert.That(_slot.HvaToGfn(new Hva(0x4000_1000)), Is.EqualTo(new Gfn(0x101)));
        Assert.That(_slot.HvaToGfn(new Hva(0x4000_FFFF)), Is.EqualTo(new Gfn(0x10F)));
    }

    [TestCase(0x3FFF_FFFFUL)]
    [TestCase(0x4001_0000UL)]
    public void HvaToGfn_OutsideTheSlot_Throws(ulong hva)
    {
        var ex = Assert.Throws<MemslotException>(() => _slot.HvaToGfn(new Hva(hva)))!;
        Assert.That(ex.Error, Is.EqualTo(MemslotError.HvaOutsideSlot));
        Assert.That(ex.Message, Does.Contain($"0x{hva:x}").And.Contain("[0x40000000, 0x40010000)"));
    }

    [Test]
    public void Contains_IsInclusiveAtTheStartAndExclusiveAtTheEnd()
    {
        Assert.That(_slot.ContainsGfn(new Gfn(0xFF)), Is.False);
        Assert.That(_slot.ContainsGfn(new Gfn(0x100)), Is.True);
        Assert.That(_slot.ContainsGfn(new Gfn(0x10F)), Is.True);
        Assert.That(_slot.ContainsGfn(new Gfn(0x110)), Is.False);
        Assert.That(_slot.ContainsHva(new Hva(0x3FFF_FFFF)), Is.False);
        Assert.That(_slot.ContainsHva(new Hva(0x4000_0000)), Is.True);
        Assert.That(_slot.ContainsHva(new Hva(0x4000_FFFF)), Is.True);
        Assert.That(_slot.ContainsHva(new Hva(0x4001_0000)), Is.False);
    }

    [TestCase(0x4000_0000UL, 0x4001_0000UL, 0x100UL, 0x110UL, TestName = "Clamp_ExactlyTheSlot")]
    [TestCase(0x3000_0000UL, 0x5000_0000UL, 0x100UL, 0x110UL, TestName = "Clamp_AroundTheSlot")]
    [TestCase(0x4000_1000UL, 0x4000_2000UL, 0x101UL, 0x102UL, TestName = "Clamp_OneAlignedPage")]
    [TestCase(0x4000_1FFFUL, 0x4000_2001UL, 0x101UL, 0x103UL, TestName = "Clamp_TwoBytesStraddlingAPageBoundary")]
    [TestCase(0x4000_1001UL, 0x4000_1002UL, 0x101UL, 0x102UL, TestName = "Clamp_OneByteMidPage")]
    [TestCase(0x3FFF_F800UL, 0x4000_0001UL, 0x100UL, 0x101UL, TestName = "Clamp_StartBeforeTheSlotEndInFirstPage")]
    [TestCase(0x4000_F001UL, 0xFFFF_FFFF_FFFFUL, 0x10FUL, 0x110UL, TestName = "Clamp_StartInLastPageEndBeyond")]
    public void TryClampHvaRange_IncludesEveryTouchedPage(ulong start, ulong end, ulong first, ulong after)
    {
        Assert.That(_slot.TryClampHvaRange(new Hva(start), new Hva(end), out var gfnStart, out var gfnEnd), Is.True);
        Assert.That(gfnStart, Is.EqualTo(new Gfn(first)));
        Assert.That(gfnEnd, Is.EqualTo(new Gfn(after)));
    }

    [TestCase(0x3000_0000UL, 0x4000_0000UL, TestName = "Clamp_EndsAtTheSlotStart")]
    [TestCase(0x4001_0000UL, 0x4002_0000UL, TestName = "Clamp_StartsAtTheSlotEnd")]
    [TestCase(0x4000_5000UL, 0x4000_5000UL, TestName = "Clamp_EmptyRange")]
    [TestCase(0x4000_6000UL, 0x4000_5000UL, TestName = "Clamp_ReversedRange")]
    public void TryClampHvaRange_WithoutIntersection_ReturnsFalse(ulong start, ulong end)
    {
        Assert.That(_slot.TryClampHvaRange(new Hva(start), new Hva(end), out var gfnStart, out var gfnEnd), Is.False);
        Assert.That(gfnEnd - gfnStart, Is.Zero);
    }
}
