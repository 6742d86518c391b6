namespace Hypervisor.HostMm.Migration;

/// <summary>
/// A VMA's NUMA memory policy (Linux's <c>struct mempolicy</c>): a mode and a node mask of up to 64 nodes. It decides the
/// node a fault allocates on (<see cref="NodeFor"/>) and whether a frame already sits where the policy wants it
/// (<see cref="Allows"/>, used by <c>mbind(MPOL_MF_MOVE)</c> and by NUMA balancing).
/// </summary>
public readonly record struct NumaPolicy
{
    private NumaPolicy(NumaPolicyMode mode, ulong nodes)
    {
        Mode = mode;
        Nodes = nodes;
    }

    /// <summary>The default policy: local allocation (the process's preferred node).</summary>
    public static NumaPolicy Local => default;

    /// <summary>The mode.</summary>
    public NumaPolicyMode Mode { get; }

    /// <summary>The node mask (bit n = node n); 0 for <see cref="NumaPolicyMode.Local"/>.</summary>
    public ulong Nodes { get; }

    /// <summary>MPOL_BIND to <paramref name="nodes"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="nodes"/> is empty or names a node outside 0..63.</exception>
    public static NumaPolicy Bind(params int[] nodes) => new(NumaPolicyMode.Bind, MaskOf(nodes, nameof(nodes)));

    /// <summary>MPOL_INTERLEAVE over <paramref name="nodes"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="nodes"/> is empty or names a node outside 0..63.</exception>
    public static NumaPolicy Interleave(params int[] nodes) => new(NumaPolicyMode.Interleave, MaskOf(nodes, nameof(nodes)));

    /// <summary>MPOL_PREFERRED on <paramref name="node"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="node"/> is outside 0..63.</exception>
    public static NumaPolicy Preferred(int node) => new(NumaPolicyMode.Preferred, MaskOf([node], nameof(node)));

    /// <summary>The highest node the mask names, or -1 for none.</summary>
    public int HighestNode => Nodes == 0 ? -1 : 63 - BitOperations.LeadingZeroCount(Nodes);

    /// <summary>
    /// The node a fault of page <paramref name="pageIndex"/> allocates on first: the local node, the preferred node,
    /// the <c>pageIndex mod weight</c>-th node of an interleave mask, or a bind mask's lowest node.
    /// </summary>
    public int NodeFor(int localNode, ulong pageIndex)
    {
        switch (Mode)
        {
            case NumaPolicyMode.Local:
                return localNode;
            case NumaPolicyMode.Interleave:
                var target = (int)(pageIndex % (ulong)BitOperations.PopCount(Nodes));
                var mask = Nodes;
                for (var i = 0; i < target; i++)
                {
                    mask &= mask - 1;
                }

                return BitOperations.TrailingZeroCount(mask);
            case NumaPolicyMode.Bind when (Nodes & (1UL << localNode)) != 0:
                return localNode; // Linux's bind allocates on the nearest allowed node: the local one when allowed
            default:
                return BitOperations.TrailingZeroCount(Nodes);
        }
    }

    /// <summary>True when a page on <paramref name="node"/> satisfies the policy (misplaced pages are those it refuses).</summary>
    public bool Allows(int node, int localNode, ulong pageIndex) => Mode switch
    {
        NumaPolicyMode.Bind => (Nodes & (1UL << node)) != 0,
        NumaPolicyMode.Interleave => node == NodeFor(localNode, pageIndex),
        NumaPolicyMode.Preferred => node == BitOperations.TrailingZeroCount(Nodes),
        _ => true,
    };

    /// <summary>True when an allocation may fall back to nodes outside the mask (every mode but bind).</summary>
    public bool MayFallBack => Mode != NumaPolicyMode.Bind;

    /// <inheritdoc />
    public override string ToString() => Mode switch
    {
        NumaPolicyMode.Local => "local",
        NumaPolicyMode.Preferred => $"preferred={BitOperations.TrailingZeroCount(Nodes)}",
        _ => $"{(Mode == NumaPolicyMode.Bind ? "bind" : "interleave")}={NodeList(Nodes)}",
    };

    private static string NodeList(ulong mask) => string.Join(',', Enumerable.Range(0, 64).Where(n => (mask & (1UL << n)) != 0));

    private static ulong MaskOf(int[] nodes, string paramName)
    {
        ArgumentNullException.ThrowIfNull(nodes, paramName);
        if (nodes.Length == 0)
        {
            throw new ArgumentException("a NUMA policy needs at least one node: the node list is empty", paramName);
        }

        var mask = 0UL;
        foreach (var node in nodes)
        {
            if (node is < 0 or > 63)
            {
                throw new ArgumentException($"node {node} cannot be in a NUMA policy: nodes are 0 to 63", paramName);
            }

            mask |= 1UL << node;
        }

        return mask;
    }
}
