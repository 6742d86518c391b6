using System.Diagnostics;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// The open invalidate_range_start timestamps of the current thread, for a passive notifier subscriber that times each
/// start to its end. Start and end of one range run on the same thread and nest (an invalidation inside another is ended
/// first), so a small per-thread stack pairs them; a start beyond <see cref="MaxDepth"/> is not timed (its end pops
/// nothing).
/// </summary>
/// <typeparam name="TOwner">
/// The subscriber type that owns the stack. The stack is static per closed generic type, so each subscriber type has its
/// own: two types on one chain would otherwise pop each other's starts.
/// </typeparam>
internal static class InvalidationStartStack<TOwner>
{
    /// <summary>How deep starts nest before they go untimed.</summary>
    public const int MaxDepth = 8;

    [ThreadStatic]
    private static long[]? t_starts;

    [ThreadStatic]
    private static int t_depth;

    /// <summary>Records the start of an invalidation on this thread.</summary>
    public static void Push()
    {
        var starts = t_starts ??= new long[MaxDepth];
        if (t_depth < MaxDepth)
        {
            starts[t_depth] = Stopwatch.GetTimestamp();
        }

        t_depth++;
    }

    /// <summary>
    /// Ends the innermost open invalidation of this thread: its start timestamp, or false when there was none or it was
    /// started beyond <see cref="MaxDepth"/>.
    /// </summary>
    public static bool TryPop(out long startTimestamp)
    {
        startTimestamp = 0;
        if (t_depth == 0)
        {
            return false;
        }

        t_depth--;
        if (t_depth >= MaxDepth || t_starts is null)
        {
            return false;
        }

        startTimestamp = t_starts[t_depth];
        return true;
    }
}
