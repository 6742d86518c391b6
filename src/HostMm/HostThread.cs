namespace Hypervisor.HostMm;

/// <summary>
/// Per-thread host state: the NUMA node the calling thread runs on (Linux's <c>numa_node_id()</c>). A vCPU thread sets
/// its home node here; NUMA hinting faults migrate pages towards it.
/// </summary>
public static class HostThread
{
    [ThreadStatic]
    private static int t_nodePlusOne;

    /// <summary>The node this thread runs on, or -1 for "its process's preferred node" (the default).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below -1.</exception>
    public static int CurrentNode
    {
        get => t_nodePlusOne - 1;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, -1);
            t_nodePlusOne = value + 1;
        }
    }

    /// <summary>The node this thread runs on for a fault of <paramref name="mm"/>: <see cref="CurrentNode"/>, or the process's preferred node.</summary>
    internal static int NodeFor(Mm mm)
    {
        var node = CurrentNode;
        return node < 0 || node >= mm.Host.Memory.NodeCount ? mm.PreferredNode : node;
    }
}
