namespace Hypervisor.Notifier.Intervals;

/// <summary>
/// An interval tree over closed <c>ulong</c> intervals <c>[start, last]</c> (last inclusive, as Linux's
/// <c>interval_tree</c>): an AVL tree keyed by start, where equal starts keep insertion order, and every node
/// carries the maximum last of its subtree so that overlap queries prune whole subtrees. Insert and remove
/// are O(log n); finding every overlap of a query is O(log n + k) for k matches and allocates nothing.
/// </summary>
/// <remarks>
/// Not thread-safe: callers serialise every mutation (insert, remove) with their own lock. Any number of
/// threads may query and enumerate concurrently as long as no mutation runs at the same time.
/// </remarks>
/// <typeparam name="T">The value carried by each node.</typeparam>
public sealed class IntervalTree<T>
    where T : class
{
    // Invariants between mutations: _root is null iff _count == 0; every reachable node has Tree == this,
    // correct Parent links, AVL heights and SubtreeLast (see IntervalTreeNode). _version changes on every
    // mutation so that a live enumerator can detect it.
    private IntervalTreeNode<T>? _root;
    private int _count;
    private int _version;

    /// <summary>Number of intervals in the tree.</summary>
    public int Count => _count;

    /// <summary>Bumped by every mutation; enumerators compare it to refuse a tree changed under them.</summary>
    internal int Version => _version;

    /// <summary>The root node, for invariant checks in tests.</summary>
    internal IntervalTreeNode<T>? Root => _root;

    /// <summary>Height of the tree (0 when empty, 1 for a single node).</summary>
    internal int Height => HeightOf(_root);

    /// <summary>
    /// Adds <c>[start, last]</c> carrying <paramref name="value"/>. Duplicate and overlapping intervals are
    /// allowed; among equal starts the new node comes after those already present.
    /// </summary>
    /// <param name="start">Inclusive start.</param>
    /// <param name="last">Inclusive end, not below <paramref name="start"/>.</param>
    /// <param name="value">The value to carry.</param>
    /// <returns>The node, the handle for <see cref="Remove"/>.</returns>
    /// <exception cref="InvalidRangeException"><paramref name="start"/> is above <paramref name="last"/>.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public IntervalTreeNode<T> Insert(ulong start, ulong last, T value)
    {
        ThrowIfReversed(start, last);
        ArgumentNullException.ThrowIfNull(value);

        var node = new IntervalTreeNode<T>(start, last, value, this);
        if (_root is null)
        {
            _root = node;
        }
        else
        {
            var parent = _root;
            while (true)
            {
                if (start < parent.Start)
                {
                    if (parent.Left is null)
                    {
                        parent.Left = node;
                        break;
                    }

                    parent = parent.Left;
                }
                else
                {
                    // Equal starts go right: in-order position then follows insertion order.
                    if (parent.Right is null)
                    {
                        parent.Right = node;
                        break;
                    }

                    parent = parent.Right;
                }
            }

            node.Parent = parent;
            RebalanceUpFrom(parent);
        }

        _count++;
        _version++;
        return node;
    }

    /// <summary>Removes <paramref name="node"/>; other nodes keep their relative order.</summary>
    /// <param name="node">A node returned by this tree's <see cref="Insert"/> and not yet removed.</param>
    /// <exception cref="ArgumentNullException"><paramref name="node"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The node was already removed or belongs to another tree.</exception>
    public void Remove(IntervalTreeNode<T> node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (!ReferenceEquals(node.Tree, this))
        {
            throw new InvalidOperationException(node.Tree is null
                ? $"node [0x{node.Start:x}, 0x{node.Last:x}] was already removed: a node can be removed only once"
                : $"node [0x{node.Start:x}, 0x{node.Last:x}] belongs to another tree: remove it from the tree that inserted it");
        }

        IntervalTreeNode<T>? rebalanceFrom;
        if (node.Left is not null && node.Right is not null)
        {
            // Two children: the in-order successor (leftmost of the right subtree, no left child) takes
            // the node's place, so no other node changes its in-order position.
            var successor = node.Right;
            while (successor.Left is not null)
            {
                successor = successor.Left;
            }

            if (ReferenceEquals(successor.Parent, node))
            {
                rebalanceFrom = successor;
            }
            else
            {
                rebalanceFrom = successor.Parent!;
                rebalanceFrom.Left = successor.Right;
                if (successor.Right is not null)
                {
                    successor.Right.Parent = rebalanceFrom;
                }

                successor.Right = node.Right;
                node.Right.Parent = successor;
            }

            successor.Left = node.Left;
            node.Left.Parent = successor;
            successor.Parent = node.Parent;
            ReplaceChild(node.Parent, node, successor);
        }
        else
        {
            var child = node.Left ?? node.Right;
            if (child is not null)
            {
                child.Parent = node.Parent;
            }

            ReplaceChild(node.Parent, node, child);
            rebalanceFrom = node.Parent;
        }

        RebalanceUpFrom(rebalanceFrom);

        node.Left = null;
        node.Right = null;
        node.Parent = null;
        node.Tree = null;
        _count--;
        _version++;
    }

    /// <summary>
    /// Enumerates, in ascending start order (insertion order among equal starts), every node whose
    /// interval intersects <c>[start, last]</c>. The enumerator is a struct and allocates nothing.
    /// </summary>
    /// <param name="start">Inclusive start of the query.</param>
    /// <param name="last">Inclusive end of the query, not below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="start"/> is above <paramref name="last"/>.</exception>
    public IntervalTreeOverlapEnumerator<T> Overlapping(ulong start, ulong last)
    {
        ThrowIfReversed(start, last);
        return new IntervalTreeOverlapEnumerator<T>(this, start, last);
    }

    /// <summary>The first node <see cref="Overlapping"/> would yield, or null when nothing intersects <c>[start, last]</c>.</summary>
    /// <param name="start">Inclusive start of the query.</param>
    /// <param name="last">Inclusive end of the query, not below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="start"/> is above <paramref name="last"/>.</exception>
    public IntervalTreeNode<T>? FirstOverlap(ulong start, ulong last)
    {
        ThrowIfReversed(start, last);
        return FirstOverlapUnchecked(start, last);
    }

    /// <summary>True when at least one node intersects <c>[start, last]</c>.</summary>
    /// <param name="start">Inclusive start of the query.</param>
    /// <param name="last">Inclusive end of the query, not below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="start"/> is above <paramref name="last"/>.</exception>
    public bool AnyOverlap(ulong start, ulong last) => FirstOverlap(start, last) is not null;

    /// <summary>Throws <see cref="InvalidRangeException"/> when the closed interval is reversed.</summary>
    internal static void ThrowIfReversed(ulong start, ulong last)
    {
        if (start > last)
        {
            throw new InvalidRangeException(
                NotifierRule.EmptyOrReversedRange,
                $"interval [0x{start:x}, 0x{last:x}] is reversed: start must not exceed last (last is inclusive)",
                nameof(start));
        }
    }

    /// <summary><see cref="FirstOverlap"/> without argument checks.</summary>
    internal IntervalTreeNode<T>? FirstOverlapUnchecked(ulong start, ulong last)
    {
        var root = _root;
        return root is null || root.SubtreeLast < start ? null : FirstInSubtree(root, start, last);
    }

    /// <summary><see cref="IntervalTreeNode{T}.NextOverlap"/> without argument checks.</summary>
    internal static IntervalTreeNode<T>? NextOverlapUnchecked(IntervalTreeNode<T> node, ulong start, ulong last)
    {
        var current = node;
        while (true)
        {
            // Invariant: every node before `current` in order has been yielded or does not intersect.
            var right = current.Right;
            if (right is not null && right.SubtreeLast >= start)
            {
                return FirstInSubtree(right, start, last);
            }

            // Nothing in the right subtree reaches `start`: climb to the in-order successor, the first
            // ancestor reached from its left side.
            IntervalTreeNode<T> child;
            do
            {
                child = current;
                current = current.Parent!;
                if (current is null)
                {
                    return null;
                }
            }
            while (ReferenceEquals(current.Right, child));

            if (current.Start > last)
            {
                return null;
            }

            if (current.Last >= start)
            {
                return current;
            }
        }
    }

    /// <summary>
    /// The in-order first node of the subtree at <paramref name="node"/> that intersects <c>[start, last]</c>,
    /// or null. Precondition: <c>node.SubtreeLast &gt;= start</c>. A null result also means no later node in
    /// the whole tree intersects: the search finds the first node whose last reaches <paramref name="start"/>,
    /// and if that one starts after <paramref name="last"/>, so does every node after it.
    /// </summary>
    private static IntervalTreeNode<T>? FirstInSubtree(IntervalTreeNode<T> node, ulong start, ulong last)
    {
        while (true)
        {
            var left = node.Left;
            if (left is not null && left.SubtreeLast >= start)
            {
                node = left;
                continue;
            }

            if (node.Start > last)
            {
                return null;
            }

            if (node.Last >= start)
            {
                return node;
            }

            // The precondition puts a node reaching `start` in the right subtree.
            var right = node.Right;
            if (right is null || right.SubtreeLast < start)
            {
                return null;
            }

            node = right;
        }
    }

    private static int HeightOf(IntervalTreeNode<T>? node) => node?.Height ?? 0;

    private static void Update(IntervalTreeNode<T> node)
    {
        var left = node.Left;
        var right = node.Right;
        var max = node.Last;
        var height = 0;
        if (left is not null)
        {
            max = Math.Max(max, left.SubtreeLast);
            height = left.Height;
        }

        if (right is not null)
        {
            max = Math.Max(max, right.SubtreeLast);
            height = Math.Max(height, right.Height);
        }

        node.SubtreeLast = max;
        node.Height = height + 1;
    }

    /// <summary>Restores heights, augmentation and AVL balance on the path from <paramref name="node"/> to the root.</summary>
    private void RebalanceUpFrom(IntervalTreeNode<T>? node)
    {
        while (node is not null)
        {
            node = Balance(node).Parent;
        }
    }

    /// <summary>Rebalances the subtree at <paramref name="node"/> and returns its new root.</summary>
    private IntervalTreeNode<T> Balance(IntervalTreeNode<T> node)
    {
        Update(node);
        var balance = HeightOf(node.Left) - HeightOf(node.Right);
        if (balance > 1)
        {
            var left = node.Left!;
            if (HeightOf(left.Left) < HeightOf(left.Right))
            {
                RotateLeft(left);
            }

            return RotateRight(node);
        }

        if (balance < -1)
        {
            var right = node.Right!;
            if (HeightOf(right.Right) < HeightOf(right.Left))
            {
                RotateRight(right);
            }

            return RotateLeft(node);
        }

        return node;
    }

    private IntervalTreeNode<T> RotateLeft(IntervalTreeNode<T> node)
    {
        var pivot = node.Right!;
        node.Right = pivot.Left;
        if (pivot.Left is not null)
        {
            pivot.Left.Parent = node;
        }

        pivot.Parent = node.Parent;
        ReplaceChild(node.Parent, node, pivot);
        pivot.Left = node;
        node.Parent = pivot;
        Update(node);
        Update(pivot);
        return pivot;
    }

    private IntervalTreeNode<T> RotateRight(IntervalTreeNode<T> node)
    {
        var pivot = node.Left!;
        node.Left = pivot.Right;
        if (pivot.Right is not null)
        {
            pivot.Right.Parent = node;
        }

        pivot.Parent = node.Parent;
        ReplaceChild(node.Parent, node, pivot);
        pivot.Right = node;
        node.Parent = pivot;
        Update(node);
        Update(pivot);
        return pivot;
    }

    private void ReplaceChild(IntervalTreeNode<T>? parent, IntervalTreeNode<T> oldChild, IntervalTreeNode<T>? newChild)
    {
        if (parent is null)
        {
            _root = newChild;
        }
        else if (ReferenceEquals(parent.Left, oldChild))
        {
            parent.Left = newChild;
        }
        else
        {
            parent.Right = newChild;
        }
    }
}
