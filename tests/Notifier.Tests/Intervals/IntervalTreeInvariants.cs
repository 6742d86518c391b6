using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Notifier.Tests.Intervals;

/// <summary>Checks every structural invariant of an <see cref="IntervalTree{T}"/> by a full walk.</summary>
public static class IntervalTreeInvariants
{
    /// <summary>Asserts the invariants and returns the nodes in order.</summary>
    public static List<IntervalTreeNode<T>> Check<T>(IntervalTree<T> tree)
        where T : class
    {
        var inOrder = new List<IntervalTreeNode<T>>(tree.Count);
        var root = tree.Root;
        if (root is not null)
        {
            Assert.That(root.Parent, Is.Null, "root has a parent");
            Walk(tree, root, inOrder);
        }

        Assert.That(inOrder, Has.Count.EqualTo(tree.Count), "reachable nodes != Count");
        for (var i = 1; i < inOrder.Count; i++)
        {
            Assert.That(inOrder[i].Start, Is.GreaterThanOrEqualTo(inOrder[i - 1].Start), $"in-order starts decrease at {i}");
        }

        return inOrder;
    }

    private static void Walk<T>(IntervalTree<T> tree, IntervalTreeNode<T> node, List<IntervalTreeNode<T>> inOrder)
        where T : class
    {
        Assert.That(node.Tree, Is.SameAs(tree), "node does not point to its tree");
        Assert.That(node.IsInTree, Is.True);
        var max = node.Last;
        var leftHeight = 0;
        var rightHeight = 0;
        if (node.Left is { } left)
        {
            Assert.That(left.Parent, Is.SameAs(node), "left child's parent link is wrong");
            Walk(tree, left, inOrder);
            max = Math.Max(max, left.SubtreeLast);
            leftHeight = left.Height;
        }

        inOrder.Add(node);
        if (node.Right is { } right)
        {
            Assert.That(right.Parent, Is.SameAs(node), "right child's parent link is wrong");
            Walk(tree, right, inOrder);
            max = Math.Max(max, right.SubtreeLast);
            rightHeight = right.Height;
        }

        Assert.That(node.SubtreeLast, Is.EqualTo(max), $"augmentation wrong at {node}");
        Assert.That(node.Height, Is.EqualTo(Math.Max(leftHeight, rightHeight) + 1), $"height wrong at {node}");
        Assert.That(Math.Abs(leftHeight - rightHeight), Is.LessThanOrEqualTo(1), $"AVL balance broken at {node}");
    }
}
