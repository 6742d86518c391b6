using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class VmaTests
{
    [Test]
    public void NewMapping_HasItsGeometryAndPageOffsetIsTheStartPageNumber()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read | Protection.Write, VmaFlags.None);
        Assert.That(vma.Start, Is.EqualTo(P(0)));
        Assert.That(vma.End, Is.EqualTo(P(4)));
        Assert.That(vma.Pages, Is.EqualTo(4));
        Assert.That(vma.Length, Is.EqualTo(4 * Page));
        Assert.That(vma.PageOffset, Is.EqualTo(0x7f00_0000_0UL));
        Assert.That(vma.IsInSet, Is.True);
        Assert.That(vma.Contains(P(0)), Is.True);
        Assert.That(vma.Contains(P(4) - 1UL), Is.True);
        Assert.That(vma.Contains(P(4)), Is.False);
        Assert.That(vma.Contains(P(0) - 1UL), Is.False);
    }

    [Test]
    public void EveryNewMapping_GetsAFreshAnonId()
    {
        var set = new VmaSet();
        var other = new VmaSet();
        var ids = new[]
        {
            set.Add(P(0), P(1), Protection.Read, VmaFlags.None).AnonId,
            set.Add(P(1), P(2), Protection.Read, VmaFlags.None).AnonId,
            other.Add(P(0), P(1), Protection.Read, VmaFlags.None).AnonId,
        };
        Assert.That(ids, Is.Unique);
    }

    [Test]
    public void ToString_ShowsRangeRwxAnonIdAndPageOffset()
    {
        var set = new VmaSet();
        var vma = set.Add(new Hva(0x7f0000000000), new Hva(0x7f0000004000), Protection.Read | Protection.Write, VmaFlags.None);
        Assert.That(vma.ToString(), Is.EqualTo($"[0x7f0000000000, 0x7f0000004000) rw- anon#{vma.AnonId} pgoff 0x7f0000000"));
        set.SetFlags(vma, VmaFlags.Mergeable);
        Assert.That(vma.ToString(), Does.EndWith("pgoff 0x7f0000000 Mergeable"));
    }

    [Test]
    public void PageIndexOfAndAddressOfIndex_AreInverse()
    {
        var set = new VmaSet();
        var vma = set.Add(P(8), P(12), Protection.Read, VmaFlags.None);
        for (ulong i = 0; i < 4; i++)
        {
            var address = P(8 + i) + 0x123UL;
            var index = vma.PageIndexOf(address);
            Assert.That(index, Is.EqualTo(P(8).PageNumber + i));
            Assert.That(vma.AddressOfIndex(index), Is.EqualTo(address.PageAligned));
        }
    }

    [Test]
    public void PageIndexOfOutside_ThrowsNamingTheAddressAndTheVma()
    {
        var set = new VmaSet();
        var vma = set.Add(P(8), P(12), Protection.Read, VmaFlags.None);
        Assert.That(
            () => vma.PageIndexOf(P(12)),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains(P(12).ToString()).And.Message.Contains(vma.ToString()));
        Assert.That(
            () => vma.AddressOfIndex(vma.PageOffset + 4),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains($"0x{vma.PageOffset + 4:x}"));
        Assert.That(() => vma.AddressOfIndex(vma.PageOffset - 1), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Overlap_ThrowsNamingBothRangesAndChangesNothing()
    {
        var set = new VmaSet();
        set.Add(P(4), P(8), Protection.Read, VmaFlags.None);
        var ex = Assert.Throws<OverlappingMappingException>(() => set.Add(P(6), P(10), Protection.Read, VmaFlags.None));
        Assert.That(ex!.Message, Does.Contain($"[{P(6)}, {P(10)})").And.Contain($"[{P(4)}, {P(8)})"));
        Assert.That((ex.Start, ex.End, ex.ExistingStart, ex.ExistingEnd), Is.EqualTo((P(6), P(10), P(4), P(8))));
        Assert.That(set.Count, Is.EqualTo(1));
        Assert.That(set.TotalPages, Is.EqualTo(4));

        // Enclosing, enclosed and single-page overlaps at either edge.
        Assert.That(() => set.Add(P(0), P(20), Protection.Read, VmaFlags.None), Throws.TypeOf<OverlappingMappingException>());
        Assert.That(() => set.Add(P(5), P(6), Protection.Read, VmaFlags.None), Throws.TypeOf<OverlappingMappingException>());
        Assert.That(() => set.Add(P(3), P(5), Protection.Read, VmaFlags.None), Throws.TypeOf<OverlappingMappingException>());
        Assert.That(() => set.Add(P(7), P(9), Protection.Read, VmaFlags.None), Throws.TypeOf<OverlappingMappingException>());
        Assert.That(() => set.Add(P(0), P(4), Protection.Read, VmaFlags.None), Throws.Nothing, "adjacent is not overlapping");
        Assert.That(() => set.Add(P(8), P(9), Protection.Read, VmaFlags.None), Throws.Nothing);
    }

    [Test]
    public void AddWithABadRange_ThrowsInvalidRange()
    {
        var set = new VmaSet();
        Assert.That(() => set.Add(P(1), P(1), Protection.Read, VmaFlags.None), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("empty"));
        Assert.That(() => set.Add(P(0) + 1UL, P(1), Protection.Read, VmaFlags.None), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("page-aligned"));
        Assert.That(() => set.Add(Hva.AddressSpaceEnd, Hva.AddressSpaceEnd + Page, Protection.Read, VmaFlags.None), Throws.TypeOf<InvalidRangeException>());
        Assert.That(set.Count, Is.Zero);
    }

    [Test]
    public void RemoveAndInsert_DetachAndReattachTheSameObject()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(2), Protection.Read, VmaFlags.None);
        set.Remove(vma);
        Assert.That(vma.IsInSet, Is.False);
        Assert.That(set.Find(P(0)), Is.Null);
        Assert.That(set.TotalPages, Is.Zero);
        Assert.That(() => set.Remove(vma), Throws.InvalidOperationException.With.Message.Contains("detached"));
        Assert.That(() => set.SetProtection(vma, Protection.None), Throws.InvalidOperationException);

        set.Insert(vma);
        Assert.That(set.Find(P(1)), Is.SameAs(vma));
        Assert.That(() => set.Insert(vma), Throws.InvalidOperationException.With.Message.Contains("already in this set"));
        var other = new VmaSet();
        Assert.That(() => other.Insert(vma), Throws.InvalidOperationException.With.Message.Contains("another set"));
        Assert.That(() => other.Remove(vma), Throws.InvalidOperationException.With.Message.Contains("another set"));
    }

    [Test]
    public void InsertOverAnExistingVma_ThrowsAndLeavesTheVmaDetached()
    {
        var set = new VmaSet();
        var a = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        set.Add(P(8), P(10), Protection.Read, VmaFlags.None);
        set.Remove(a);
        var moved = a.CopyTo(P(6));
        var ex = Assert.Throws<OverlappingMappingException>(() => set.Insert(moved));
        Assert.That(ex!.Message, Does.Contain($"[{P(6)}, {P(10)})").And.Contain($"[{P(8)}, {P(10)})"));
        Assert.That(moved.IsInSet, Is.False);
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void MovedCopy_KeepsPageOffsetAnonIdProtectionAndFlags()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read | Protection.Execute, VmaFlags.Mergeable);
        var indexOfSecondPage = vma.PageIndexOf(P(1));
        set.Remove(vma);
        var moved = vma.CopyTo(P(100));
        set.Insert(moved);
        Assert.That(moved, Is.Not.SameAs(vma));
        Assert.That(
            (moved.Start, moved.End, moved.PageOffset, moved.AnonId, moved.Protection, moved.Flags),
            Is.EqualTo((P(100), P(104), vma.PageOffset, vma.AnonId, vma.Protection, vma.Flags)));
        Assert.That(moved.AddressOfIndex(indexOfSecondPage), Is.EqualTo(P(101)), "the page keeps its index at the new address");
        Assert.That(() => vma.CopyTo(P(0) + 1UL), Throws.TypeOf<InvalidRangeException>());
        Assert.That(() => vma.CopyTo(Hva.AddressSpaceEnd - Page), Throws.TypeOf<InvalidRangeException>());
    }

    [Test]
    public void RangeChangeWhileIndexed_IsRefused()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        Assert.That(() => vma.SetRange(P(0), P(8), vma.PageOffset), Throws.InvalidOperationException.With.Message.Contains("still indexed"));
        Assert.That(vma.End, Is.EqualTo(P(4)));
    }

    [Test]
    public void Resize_GrowsAndShrinksInPlaceKeepingPageIndices()
    {
        var set = new VmaSet();
        var vma = set.Add(P(0), P(4), Protection.Read, VmaFlags.None);
        set.Add(P(10), P(12), Protection.Read, VmaFlags.None);
        var index = vma.PageIndexOf(P(3));

        set.Resize(vma, P(10));
        Assert.That((vma.End, set.TotalPages, set.Find(P(9))), Is.EqualTo((P(10), 12UL, vma)));
        Assert.That(vma.PageIndexOf(P(3)), Is.EqualTo(index));

        set.Resize(vma, P(2));
        Assert.That((vma.End, set.TotalPages, set.Find(P(3))), Is.EqualTo((P(2), 4UL, (Vma?)null)));

        var ex = Assert.Throws<OverlappingMappingException>(() => set.Resize(vma, P(11)));
        Assert.That(ex!.Message, Does.Contain($"[{P(0)}, {P(11)})").And.Contain($"[{P(10)}, {P(12)})"));
        Assert.That(vma.End, Is.EqualTo(P(2)));

        Assert.That(() => set.Resize(vma, P(0)), Throws.TypeOf<InvalidRangeException>().With.Message.Contains(P(0).ToString()));
        Assert.That(() => set.Resize(vma, P(3) + 5UL), Throws.TypeOf<InvalidRangeException>());
        set.CheckInvariants();
    }

    [Test]
    public void Intersecting_ReturnsOverlappingVmasInOrderAsAFreshList()
    {
        var set = new VmaSet();
        var a = set.Add(P(0), P(2), Protection.Read, VmaFlags.None);
        var c = set.Add(P(8), P(10), Protection.Read, VmaFlags.None);
        var b = set.Add(P(4), P(6), Protection.Read, VmaFlags.None);

        Assert.That(set.Intersecting(P(1), P(9)), Is.EqualTo(new[] { a, b, c }));
        Assert.That(set.Intersecting(P(2), P(4)), Is.Empty, "end is exclusive and [2,4) is a hole");
        Assert.That(set.Intersecting(P(2), P(4) + 1UL), Is.EqualTo(new[] { b }));
        Assert.That(set.Intersecting(P(5), P(5)), Is.Empty);
        Assert.That(() => set.Intersecting(P(5), P(4)), Throws.TypeOf<InvalidRangeException>());

        var list = set.Intersecting(P(0), P(10));
        set.Remove(b);
        Assert.That(list, Is.EqualTo(new[] { a, b, c }), "the list is a snapshot");
    }

    [Test]
    public void Enumeration_IsInAddressOrderAndRefusesAConcurrentChange()
    {
        var set = new VmaSet();
        set.Add(P(20), P(21), Protection.Read, VmaFlags.None);
        set.Add(P(0), P(1), Protection.Read, VmaFlags.None);
        set.Add(P(10), P(11), Protection.Read, VmaFlags.None);
        Assert.That(set.Select(v => v.Start), Is.EqualTo(new[] { P(0), P(10), P(20) }));
        Assert.That(
            () =>
            {
                foreach (var vma in set)
                {
                    set.Remove(vma);
                }
            },
            Throws.InvalidOperationException);
    }

    [Test]
    public void IsFullyMapped_DetectsHoles()
    {
        var set = new VmaSet();
        set.Add(P(0), P(2), Protection.Read, VmaFlags.None);
        set.Add(P(2), P(4), Protection.None, VmaFlags.None);
        set.Add(P(5), P(6), Protection.Read, VmaFlags.None);
        Assert.That(set.IsFullyMapped(P(0), P(4)), Is.True, "adjacent VMAs leave no hole");
        Assert.That(set.IsFullyMapped(P(1) + 7UL, P(3) + 9UL), Is.True);
        Assert.That(set.IsFullyMapped(P(0), P(5)), Is.False);
        Assert.That(set.IsFullyMapped(P(4), P(6)), Is.False, "hole at the start");
        Assert.That(set.IsFullyMapped(P(5), P(7)), Is.False, "hole at the end");
        Assert.That(set.IsFullyMapped(P(9), P(10)), Is.False);
        Assert.That(set.IsFullyMapped(P(9), P(9)), Is.True, "an empty range has no hole");
    }
}
