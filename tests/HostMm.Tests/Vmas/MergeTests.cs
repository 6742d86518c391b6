using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class MergeTests
{
    private const Protection Rw = Protection.Read | Protection.Write;

    /// <summary>One mapping [0, 6) split into [0,2) [2,4) [4,6): every pair is mergeable.</summary>
    private static (VmaSet Set, Vma Left, Vma Middle, Vma Right) ThreeParts()
    {
        var set = new VmaSet();
        var left = set.Add(P(0), P(6), Rw, VmaFlags.None);
        var middle = set.Split(left, P(2));
        var right = set.Split(middle, P(4));
        return (set, left, middle, right);
    }

    [Test]
    public void SplitPartsWithEqualAttributes_MergeBackIntoTheLowest()
    {
        var (set, left, middle, right) = ThreeParts();
        var indices = Enumerable.Range(0, 6).Select(i => set.Find(P((ulong)i))!.PageIndexOf(P((ulong)i))).ToArray();

        var survivor = set.MergeWithNeighbours(middle);

        Assert.That(survivor, Is.SameAs(left));
        Assert.That((left.Start, left.End, left.PageOffset), Is.EqualTo((P(0), P(6), P(0).PageNumber)));
        Assert.That((middle.IsInSet, right.IsInSet), Is.EqualTo((false, false)), "merged-away VMAs are detached");
        Assert.That((set.Count, set.TotalPages), Is.EqualTo((1, 6UL)));
        Assert.That(Enumerable.Range(0, 6).Select(i => left.PageIndexOf(P((ulong)i))), Is.EqualTo(indices));
        set.CheckInvariants();
    }

    [Test]
    public void MergeWithNextOnly_KeepsTheVmaAndGrowsIt()
    {
        var (set, left, middle, right) = ThreeParts();
        set.SetProtection(left, Protection.Read);
        var survivor = set.MergeWithNeighbours(middle);
        Assert.That(survivor, Is.SameAs(middle));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(2)), (P(2), P(6)) }));
        Assert.That(middle.PageOffset, Is.EqualTo(P(2).PageNumber));
        Assert.That(right.IsInSet, Is.False);
    }

    [Test]
    public void MergeWithPreviousOnly_GrowsThePrevious()
    {
        var (set, left, middle, right) = ThreeParts();
        set.SetFlags(right, VmaFlags.HugePage);
        var survivor = set.MergeWithNeighbours(middle);
        Assert.That(survivor, Is.SameAs(left));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(4)), (P(4), P(6)) }));
        Assert.That(middle.IsInSet, Is.False);
    }

    [Test]
    public void DifferentProtection_DoesNotMerge()
    {
        var (set, left, middle, right) = ThreeParts();
        set.SetProtection(middle, Protection.Read);
        Assert.That(set.MergeWithNeighbours(middle), Is.SameAs(middle));
        Assert.That(set.Count, Is.EqualTo(3));
        Assert.That((left.IsInSet, right.IsInSet), Is.EqualTo((true, true)));
    }

    [Test]
    public void DifferentFlags_DoNotMerge()
    {
        var (set, _, middle, _) = ThreeParts();
        set.SetFlags(middle, VmaFlags.Mergeable);
        Assert.That(set.MergeWithNeighbours(middle), Is.SameAs(middle));
        Assert.That(set.Count, Is.EqualTo(3));
    }

    [Test]
    public void DifferentAnonId_DoesNotMerge()
    {
        var set = new VmaSet();
        var a = set.Add(P(0), P(2), Rw, VmaFlags.None);
        var b = set.Add(P(2), P(4), Rw, VmaFlags.None);
        Assert.That(b.PageOffset, Is.EqualTo(a.PageOffset + a.Pages), "offsets are contiguous: only the identity differs");
        Assert.That(set.MergeWithNeighbours(b), Is.SameAs(b));
        Assert.That(set.MergeWithNeighbours(a), Is.SameAs(a));
        Assert.That(set.Count, Is.EqualTo(2));
    }

    [Test]
    public void NonContiguousPageOffsets_DoNotMerge()
    {
        // [0,4) split at 2; the left half moves to [4,6), right after the right half: adjacent, same
        // identity and attributes, but its pages have indices 0..1 after the right half's 2..3.
        var set = new VmaSet();
        var left = set.Add(P(0), P(4), Rw, VmaFlags.None);
        var right = set.Split(left, P(2));
        set.Remove(left);
        var moved = left.CopyTo(P(4));
        set.Insert(moved);
        Assert.That((right.End, right.AnonId), Is.EqualTo((moved.Start, moved.AnonId)));

        Assert.That(set.MergeWithNeighbours(moved), Is.SameAs(moved));
        Assert.That(set.MergeWithNeighbours(right), Is.SameAs(right));
        Assert.That(set.Count, Is.EqualTo(2));
    }

    [Test]
    public void NonAdjacent_DoesNotMerge()
    {
        var set = new VmaSet();
        var left = set.Add(P(0), P(6), Rw, VmaFlags.None);
        var middle = set.Split(left, P(2));
        set.Resize(left, P(1));
        Assert.That(set.MergeWithNeighbours(middle), Is.SameAs(middle));
        Assert.That(Ranges(set), Is.EqualTo(new[] { (P(0), P(1)), (P(2), P(6)) }));
    }

    [Test]
    public void MergeOfAnAloneVma_ReturnsIt()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(1), Rw, VmaFlags.None);
        Assert.That(set.MergeWithNeighbours(vma), Is.SameAs(vma));
        Assert.That(() => new VmaSet().MergeWithNeighbours(vma), Throws.InvalidOperationException);
    }

    [Test]
    public void MremapGrowBackAfterShrink_MergesWithTheSplitRemainder()
    {
        // Split parts stay mergeable after an in-place shrink/grow only when the offsets line up again.
        var (set, left, middle, _) = ThreeParts();
        set.Remove(middle);
        set.Resize(left, P(4));
        Assert.That(set.MergeWithNeighbours(left), Is.SameAs(left));
        Assert.That((left.Start, left.End, set.Count), Is.EqualTo((P(0), P(6), 1)));
    }
}
