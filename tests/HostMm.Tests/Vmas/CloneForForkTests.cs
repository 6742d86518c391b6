using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Vmas.VmaTestSupport;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class CloneForForkTests
{
    private static VmaSet Parent()
    {
        var set = new VmaSet();
        var a = set.Add(P(0), P(8), Protection.Read | Protection.Write, VmaFlags.Mergeable);
        set.Split(a, P(3));
        set.Add(P(10), P(12), Protection.Read | Protection.Execute, VmaFlags.HugePage);
        set.Add(P(20), P(21), Protection.None, VmaFlags.None);
        return set;
    }

    private static object[] Fields(VmaSet set) =>
        set.Select(v => (object)(v.Start, v.End, v.Protection, v.Flags, v.PageOffset, v.AnonId)).ToArray();

    [Test]
    public void Clone_HasNewObjectsWithTheSameFields()
    {
        var parent = Parent();
        var child = parent.CloneForFork();
        Assert.That(Fields(child), Is.EqualTo(Fields(parent)));
        Assert.That((child.Count, child.TotalPages), Is.EqualTo((parent.Count, parent.TotalPages)));
        foreach (var (p, c) in parent.Zip(child))
        {
            Assert.That(c, Is.Not.SameAs(p));
        }

        child.CheckInvariants();
    }

    [Test]
    public void ChangingTheChild_LeavesTheParentAlone()
    {
        var parent = Parent();
        var before = Fields(parent);
        var child = parent.CloneForFork();

        var first = child.Find(P(0))!;
        child.SetProtection(first, Protection.Read);
        child.SetFlags(first, VmaFlags.None);
        child.Split(child.Find(P(10))!, P(11));
        child.Resize(child.Find(P(20))!, P(25));
        child.Remove(child.Find(P(3))!);
        child.Add(P(30), P(31), Protection.Read, VmaFlags.None);

        Assert.That(Fields(parent), Is.EqualTo(before));
        Assert.That(() => parent.Remove(first), Throws.InvalidOperationException, "a child VMA is not the parent's");
        parent.CheckInvariants();
    }

    [Test]
    public void ChangingTheParent_LeavesTheChildAlone()
    {
        var parent = Parent();
        var child = parent.CloneForFork();
        var before = Fields(child);
        foreach (var vma in parent.Intersecting(P(0), P(100)))
        {
            parent.Remove(vma);
        }

        Assert.That(parent.Count, Is.Zero);
        Assert.That(Fields(child), Is.EqualTo(before));
        Assert.That(child.Find(P(5)), Is.Not.Null);
    }
}
