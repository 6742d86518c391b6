namespace Hypervisor.Notifier.Intervals;

/// <summary>
/// One closed interval <c>[Start, Last]</c> stored in an <see cref="IntervalTree{T}"/>, with its value.
/// The node is the handle for removal and for continuing an overlap walk (<see cref="NextOverlap"/>).
/// </summary>
/// <typeparam name="T">The value type carried by the node.</typeparam>
public sealed class IntervalTreeNode<T>
    where T : class
{
    internal IntervalTreeNode(ulong start, ulong last, T value, IntervalTree<T> tree)
    {
        Start = start;
        Last = last;
        Value = value;
        Tree = tree;
        SubtreeLast = last;
        Height = 1;
    }

    /// <summary>Inclusive start of the interval.</summary>
    public ulong Start { get; }

    /// <summary>Inclusive end of the interval (<c>Last &gt;= Start</c>).</summary>
    public ulong Last { get; }

    /// <summary>The value the node carries.</summary>
    public T Value { get; }

    /// <summary>True from insertion until the node is removed from its tree.</summary>
    public bool IsInTree => Tree is not null;

    // Structure fields below are owned by the tree and change only under the caller's mutation
    // serialisation. Invariants while in a tree: every node in Left has Start <= this.Start, every node
    // in Right has Start >= this.Start (in-order position breaks ties by insertion), SubtreeLast is the
    // maximum Last over this node and both subtrees, Height is 1 + max(child heights) and the two child
    // heights differ by at most one (AVL).

    /// <summary>The tree that holds the node; null once removed.</summary>
    internal IntervalTree<T>? Tree;

    /// <summary>Left child (smaller or equal starts inserted earlier).</summary>
    internal IntervalTreeNode<T>? Left;

    /// <summary>Right child.</summary>
    internal IntervalTreeNode<T>? Right;

    /// <summary>Parent; null for the root.</summary>
    internal IntervalTreeNode<T>? Parent;

    /// <summary>Maximum <see cref="Last"/> over the subtree rooted here (the augmentation).</summary>
    internal ulong SubtreeLast;

    /// <summary>Height of the subtree rooted here; a leaf has height 1.</summary>
    internal int Height;

    /// <summary>
    /// The next node after this one in start order whose interval intersects <c>[start, last]</c>, or
    /// null when there is none (Linux's <c>interval_tree_iter_next</c>). Chaining from
    /// <see cref="IntervalTree{T}.FirstOverlap"/> yields the same nodes as
    /// <see cref="IntervalTree{T}.Overlapping"/>. Amortised O(log n) per step; walks parent pointers and
    /// allocates nothing.
    /// </summary>
    /// <param name="start">Inclusive start of the query.</param>
    /// <param name="last">Inclusive end of the query; must not be below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="start"/> is above <paramref name="last"/>.</exception>
    /// <exception cref="InvalidOperationException">The node has been removed from its tree.</exception>
    public IntervalTreeNode<T>? NextOverlap(ulong start, ulong last)
    {
        IntervalTree<T>.ThrowIfReversed(start, last);
        if (Tree is null)
        {
            throw new InvalidOperationException(
                $"node [{Start:x}, {Last:x}] is not in a tree: NextOverlap needs a node that is still inserted");
        }

        return IntervalTree<T>.NextOverlapUnchecked(this, start, last);
    }

    /// <inheritdoc />
    public override string ToString() => $"[0x{Start:x}, 0x{Last:x}] {Value}";
}
