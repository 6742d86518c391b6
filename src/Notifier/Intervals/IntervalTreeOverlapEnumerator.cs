namespace Hypervisor.Notifier.Intervals;

/// <summary>
/// Allocation-free enumerator over the nodes of an <see cref="IntervalTree{T}"/> that intersect a closed
/// query interval, in ascending start order. Use it with <c>foreach</c> on
/// <see cref="IntervalTree{T}.Overlapping"/>. It walks parent pointers, so it holds no stack.
/// </summary>
/// <remarks>
/// The tree must not change while the enumerator is live: <see cref="MoveNext"/> throws
/// <see cref="InvalidOperationException"/> if it did. To remove matches during a walk, chain
/// <see cref="IntervalTree{T}.FirstOverlap"/> and <see cref="IntervalTreeNode{T}.NextOverlap"/> and take the
/// next node before removing the current one.
/// </remarks>
/// <typeparam name="T">The value carried by each node.</typeparam>
public struct IntervalTreeOverlapEnumerator<T>
    where T : class
{
    private readonly IntervalTree<T>? _tree;
    private readonly ulong _start;
    private readonly ulong _last;
    private readonly int _version;
    private IntervalTreeNode<T>? _current;
    private bool _started;

    internal IntervalTreeOverlapEnumerator(IntervalTree<T> tree, ulong start, ulong last)
    {
        _tree = tree;
        _start = start;
        _last = last;
        _version = tree.Version;
        _current = null;
        _started = false;
    }

    /// <summary>The node at the current position.</summary>
    /// <exception cref="InvalidOperationException">Before the first <see cref="MoveNext"/> or after the last.</exception>
    public readonly IntervalTreeNode<T> Current =>
        _current ?? throw new InvalidOperationException(
            "the enumerator is not on a node: call MoveNext and use Current only while it returns true");

    /// <summary>Returns this enumerator, so that <c>foreach</c> works on it directly.</summary>
    public readonly IntervalTreeOverlapEnumerator<T> GetEnumerator() => this;

    /// <summary>Advances to the next intersecting node.</summary>
    /// <returns>True when <see cref="Current"/> is a node; false once every match has been yielded.</returns>
    /// <exception cref="InvalidOperationException">The tree was modified after the enumerator was created.</exception>
    public bool MoveNext()
    {
        if (_tree is null)
        {
            return false;
        }

        if (_tree.Version != _version)
        {
            throw new InvalidOperationException(
                "the interval tree was modified during enumeration: an overlap enumerator needs an unchanged tree");
        }

        if (!_started)
        {
            _started = true;
            _current = _tree.FirstOverlapUnchecked(_start, _last);
        }
        else if (_current is not null)
        {
            _current = IntervalTree<T>.NextOverlapUnchecked(_current, _start, _last);
        }

        return _current is not null;
    }
}
