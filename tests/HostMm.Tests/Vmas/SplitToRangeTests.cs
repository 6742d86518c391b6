using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class SplitToRangeTests
{
    [Test]
    public void RangeMatchingAVmaExactly_SplitsNothing()
    {
        var set = new VmaSet();
        set.Add(P(0), P(2), Protection.Read, VmaFlags.None);
        var vma = set.Add(P(2), P(6), Protection.Read, VmaFlags.None);
        set.Add(P(6), P(8), Protection.Read, VmaFlags.None);
        Assert.That(set.SplitToRange(P(2), P(6)), Is.EqualTo(new[] { vma }));
        Assert.That(set.Count, Is.EqualTo(3));
    }

    [Test]
    public void RangeInsideOneVma_SplitsItTwiceAndReturnsTheMiddle()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(10), Protection.Read, VmaFlags.None);
        var inside = set.SplitToRange(P(3), P(5));
        Assert.That(Ranges(inside), Is.EqualTo(new[] { (P(3), P(5)) }));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(3)), (P(3), P(5)), (P(5), P(10)) }));
        Assert.That(inside[0].PageOffset, Is.EqualTo(vma.PageOffset + 3));
        set.CheckInvariants();
    }

    [Test]
    public void RangeStartingAtAVmaStartAndEndingInside_SplitsOnlyAtTheEnd()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(10), Protection.Read, VmaFlags.None);
        var inside = set.SplitToRange(P(0), P(4));
        Assert.That(inside, Is.EqualTo(new[] { vma }));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(4)), (P(4), P(10)) }));
    }

    [Test]
    public void RangeStartingInsideAndEndingAtTheVmaEnd_SplitsOnlyAtTheStart()
    {
        var set = new VmaSet();
        set.Add(P(0), P(10), Protection.Read, VmaFlags.None);
        var inside = set.SplitToRange(P(7), P(10));
        Assert.That(Ranges(inside), Is.EqualTo(new[] { (P(7), P(10)) }));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(7)), (P(7), P(10)) }));
    }

    [Test]
    public void RangeAcrossHolesAndSeveralVmas_SplitsTheStraddlersAndReturnsEverythingInside()
    {
        var set = new VmaSet();
        set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        var whole = set.Add(P(6), P(8), Protection.Read, VmaFlags.None);
        set.Add(P(10), P(14), Protection.Read, VmaFlags.None);
        var inside = set.SplitToRange(P(2), P(12));
        Assert.That(Ranges(inside), Is.EqualTo(new[] { (P(2), P(4)), (P(6), P(8)), (P(10), P(12)) }));
        Assert.That(inside[1], Is.SameAs(whole));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(2)), (P(2), P(4)), (P(6), P(8)), (P(10), P(12)), (P(12), P(14)) }));
        Assert.That(set.TotalPages, Is.EqualTo(10));
        set.CheckInvariants();
    }

    [Test]
    public void RangeEndingAndStartingInHoles_SplitsNothing()
    {
        var set = new VmaSet();
        var vma = set.Add(P(4), P(6), Protection.Read, VmaFlags.None);
        Assert.That(set.SplitToRange(P(2), P(8)), Is.EqualTo(new[] { vma }));
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void NothingMapped_ReturnsEmpty()
    {
        var set = new VmaSet();
        set.Add(P(0), P(2), Protection.Read, VmaFlags.None);
        set.Add(P(8), P(10), Protection.Read, VmaFlags.None);
        Assert.That(set.SplitToRange(P(2), P(8)), Is.Empty);
        Assert.That(new VmaSet().SplitToRange(P(0), P(1)), Is.Empty);
        Assert.That(set.Count, Is.EqualTo(2));
    }

    [Test]
    public void InvalidRange_Throws()
    {
        var set = new VmaSet();
        set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        Assert.That(() => set.SplitToRange(P(1) + 8UL, P(3)), Throws.TypeOf<InvalidRangeException>());
        Assert.That(() => set.SplitToRange(P(2), P(2)), Throws.TypeOf<InvalidRangeException>());
        Assert.That(set.Count, Is.EqualTo(1), "a rejected range splits nothing");
    }
}
