namespace Hypervisor.HostMm.Migration;

/// <summary>A NUMA node the host does not have was named (Linux's <c>-ENODEV</c>/<c>-EINVAL</c>). Bad input (<see cref="HostMmRule.NodeOutOfRange"/>).</summary>
public sealed class NumaNodeOutOfRangeException : ArgumentOutOfRangeException, IInputError
{
    /// <summary>Creates the exception naming the node, the host's node count and what asked for it.</summary>
    public NumaNodeOutOfRangeException(string paramName, int node, int nodeCount, string operation)
        : base(paramName, node, $"{operation}: node {node} does not exist: the host has nodes 0 to {nodeCount - 1}")
    {
        Node = node;
        NodeCount = nodeCount;
    }

    /// <summary>The node named.</summary>
    public int Node { get; }

    /// <summary>The host's node count.</summary>
    public int NodeCount { get; }

    /// <summary>The rule that was broken: always <see cref="HostMmRule.NodeOutOfRange"/>.</summary>
    public HostMmRule Rule => HostMmRule.NodeOutOfRange;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
