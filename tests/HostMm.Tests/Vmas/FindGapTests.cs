using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class FindGapTests
{
    /// <summary>Mapped: [2,4) [5,6) [9,12). Holes in [0,16): [0,2) [4,5) [6,9) [12,16).</summary>
    private static VmaSet Layout()
    {
        var set = new VmaSet();
        set.Add(P(2), P(4), Protection.Read, VmaFlags.None);
        set.Add(P(5), P(6), Protection.Read, VmaFlags.None);
        set.Add(P(9), P(12), Protection.Read, VmaFlags.None);
        return set;
    }

    [Test]
    public void EmptySet_GivesLow() =>
        Assert.That(new VmaSet().FindGap(4 * Page, P(3), P(7)), Is.EqualTo(P(3)));

    [Test]
    public void GapAtLow_IsTakenFirst() =>
        Assert.That(Layout().FindGap(2 * Page, P(0), P(16)), Is.EqualTo(P(0)));

    [Test]
    public void TooSmallGaps_AreSkippedForTheFirstThatFits()
    {
        var set = Layout();
        Assert.That(set.FindGap(1 * Page, P(2), P(16)), Is.EqualTo(P(4)));
        Assert.That(set.FindGap(3 * Page, P(0), P(16)), Is.EqualTo(P(6)), "exact fit between VMAs");
        Assert.That(set.FindGap(4 * Page, P(0), P(16)), Is.EqualTo(P(12)), "gap right before high");
    }

    [Test]
    public void GapMustEndByHigh()
    {
        var set = Layout();
        Assert.That(set.FindGap(5 * Page, P(0), P(16)), Is.Null);
        Assert.That(set.FindGap(4 * Page, P(0), P(15)), Is.Null);
        Assert.That(set.FindGap(2 * Page, P(6), P(8)), Is.EqualTo(P(6)), "high inside a hole");
        Assert.That(set.FindGap(3 * Page, P(6), P(8)), Is.Null);
    }

    [Test]
    public void LowInsideAVmaOrUnaligned_StartsAfterIt()
    {
        var set = Layout();
        Assert.That(set.FindGap(1 * Page, P(3), P(16)), Is.EqualTo(P(4)));
        Assert.That(set.FindGap(1 * Page, P(0) + 1UL, P(16)), Is.EqualTo(P(1)), "low rounds up to a page boundary");
        Assert.That(set.FindGap(2 * Page, P(7), P(16)), Is.EqualTo(P(7)), "low inside a hole");
    }

    [Test]
    public void FullyMappedWindow_HasNoGap()
    {
        var set = new VmaSet();
        set.Add(P(0), P(8), Protection.Read, VmaFlags.None);
        Assert.That(set.FindGap(Page, P(0), P(8)), Is.Null);
        Assert.That(set.FindGap(Page, P(0), P(9)), Is.EqualTo(P(8)));
        Assert.That(set.FindGap(Page, P(4), P(4)), Is.Null, "an empty window");
    }

    [Test]
    public void GapAtTheTopOfTheAddressSpace_IsFound()
    {
        var set = new VmaSet();
        var top = Hva.AddressSpaceEnd;
        set.Add(top - (4 * Page), top - Page, Protection.Read, VmaFlags.None);
        Assert.That(set.FindGap(Page, top - (4 * Page), top), Is.EqualTo(top - Page));
        Assert.That(set.FindGap(2 * Page, top - (4 * Page), top), Is.Null);
    }

    [Test]
    public void BadArguments_Throw()
    {
        var set = Layout();
        Assert.That(() => set.FindGap(0, P(0), P(16)), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("0x0"));
        Assert.That(() => set.FindGap(Page + 1, P(0), P(16)), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("0x1001"));
        Assert.That(() => set.FindGap(Page, P(16), P(0)), Throws.TypeOf<InvalidRangeException>());
        Assert.That(() => set.FindGap(Page, P(0), Hva.AddressSpaceEnd + Page), Throws.TypeOf<InvalidRangeException>());
    }
}
