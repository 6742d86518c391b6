using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class SplitTests
{
    [Test]
    public void Split_KeepsThePageIndexOfEveryPage()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(16), Protection.Read | Protection.Write, VmaFlags.Mergeable);
        var before = Enumerable.Range(0, 16).Select(i => vma.PageIndexOf(P((ulong)i))).ToArray();

        var right = set.Split(vma, P(5));
        var rightRight = set.Split(right, P(11));
        var leftRight = set.Split(vma, P(2));

        var after = Enumerable.Range(0, 16).Select(i => set.Find(P((ulong)i))!.PageIndexOf(P((ulong)i))).ToArray();
        Assert.That(after, Is.EqualTo(before));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(2)), (P(2), P(5)), (P(5), P(11)), (P(11), P(16)) }));
        Assert.That(right.PageOffset, Is.EqualTo(vma.PageOffset + 5));
        Assert.That(leftRight.PageOffset, Is.EqualTo(vma.PageOffset + 2));
        Assert.That(rightRight.PageOffset, Is.EqualTo(vma.PageOffset + 11));
        Assert.That(set.Select(v => v.AnonId).Distinct(), Is.EqualTo(new[] { vma.AnonId }), "split parts share the anon identity");
        Assert.That(set.All(v => v.Protection == (Protection.Read | Protection.Write) && v.Flags == VmaFlags.Mergeable), Is.True);
        Assert.That((set.Count, set.TotalPages), Is.EqualTo((4, 16UL)));
        set.CheckInvariants();
    }

    [Test]
    public void Split_LeftKeepsTheObjectAndFindSeesBothParts()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        var right = set.Split(vma, P(1));
        Assert.That((vma.Start, vma.End), Is.EqualTo((P(0), P(1))));
        Assert.That((right.Start, right.End), Is.EqualTo((P(1), P(4))));
        Assert.That(set.Find(P(1) - 1UL), Is.SameAs(vma));
        Assert.That(set.Find(P(1)), Is.SameAs(right));
        Assert.That(set.Find(P(4) - 1UL), Is.SameAs(right));
    }

    [TestCase(0UL, "strictly inside")]
    [TestCase(4UL, "strictly inside")]
    [TestCase(9UL, "strictly inside")]
    public void SplitAtAnEdgeOrOutside_ThrowsNamingThePointAndTheVma(ulong page, string rule)
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        var ex = Assert.Throws<InvalidRangeException>(() => set.Split(vma, P(page)));
        Assert.That(ex!.Message, Does.Contain(P(page).ToString()).And.Contain(vma.ToString()).And.Contain(rule));
        Assert.That(ex.ParamName, Is.EqualTo("at"));
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void SplitAtAnUnalignedAddress_ThrowsNamingIt()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        var at = P(2) + 0x10UL;
        Assert.That(
            () => set.Split(vma, at),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains(at.ToString()).And.Message.Contains("page-aligned"));
        Assert.That((vma.End, set.Count), Is.EqualTo((P(4), 1)));
    }
}
