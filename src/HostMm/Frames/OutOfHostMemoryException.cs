using System.Collections.Immutable;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// No free frame on the nodes an allocation may use. Reclaim does not exist yet, so this is the whole
/// answer to memory pressure for now.
/// </summary>
/// <remarks>Running out of frames is a resource condition, neither bad input nor a bug: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class OutOfHostMemoryException : Exception
{
    /// <summary>Creates the exception; the message names the nodes tried, the flags and the free counts.</summary>
    public OutOfHostMemoryException(int preferredNode, AllocationFlags flags, ImmutableArray<long> freeFramesPerNode)
        : base(BuildMessage(preferredNode, flags, freeFramesPerNode))
    {
        PreferredNode = preferredNode;
        Flags = flags;
        FreeFramesPerNode = freeFramesPerNode;
    }

    /// <summary>The node the allocation asked for first.</summary>
    public int PreferredNode { get; }

    /// <summary>The flags of the failed allocation.</summary>
    public AllocationFlags Flags { get; }

    /// <summary>Free frames per node when the allocation gave up (racy: others may have freed since).</summary>
    public ImmutableArray<long> FreeFramesPerNode { get; }

    private static string BuildMessage(int preferredNode, AllocationFlags flags, ImmutableArray<long> free)
    {
        var tried = (flags & AllocationFlags.ExactNode) != 0
            ? $"node {preferredNode}"
            : $"any node (preferred node {preferredNode}, then nodes 0..{free.Length - 1})";
        var counts = string.Join(", ", free.Select((count, node) => $"node {node}: {count}"));
        return $"out of host memory: no free frame on {tried} for an allocation with flags {flags}; free frames per node: {counts}";
    }
}
