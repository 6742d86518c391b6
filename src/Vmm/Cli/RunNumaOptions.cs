using System.CommandLine;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The NUMA options of <c>hv run</c>: <c>--numa N</c> (the simulated host's NUMA nodes, each able to hold all guest RAM)
/// and <c>--vcpu-node K</c> (the node the vCPU threads run on). Emulated only; a home node the host does not have is a
/// usage error.
/// </summary>
internal sealed class RunNumaOptions
{
    private RunNumaOptions()
    {
        Numa = CliOptions.BoundedInt(
            "--numa",
            $"Emulated only: the simulated host's NUMA nodes, each with its own frames and sized to hold all guest RAM (so pages can migrate to any node); the report then shows guest pages per node and the migration counters. Default: {VmOptions.DefaultNumaNodes} nodes sharing a host sized for guest RAM once.",
            VmOptions.DefaultNumaNodes,
            1,
            VmOptions.MaxNumaNodes);
        VcpuNode = CliOptions.BoundedInt(
            "--vcpu-node",
            "Emulated only: the NUMA node the vCPU threads run on (their home node: first-touch faults allocate there, NUMA balancing moves pages there). Default: the VM process's preferred node, 0 for one VM.",
            0,
            0,
            VmOptions.MaxNumaNodes - 1);
    }

    /// <summary><c>--numa</c>.</summary>
    public Option<int> Numa { get; }

    /// <summary><c>--vcpu-node</c>.</summary>
    public Option<int> VcpuNode { get; }

    /// <summary>Every option, in help order.</summary>
    public IEnumerable<Option> All => [Numa, VcpuNode];

    /// <summary>Creates the options.</summary>
    public static RunNumaOptions Create() => new();

    /// <summary>
    /// Applies the parsed options to <paramref name="options"/> (accelerator set). Returns false with one line naming the
    /// option, the value and the rule when either is given on kvm, or the home node is not one of the host's nodes.
    /// </summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="options">The VM options so far.</param>
    /// <param name="applied">The options with the NUMA settings.</param>
    /// <param name="error">The error line (without the <c>hv: error:</c> prefix).</param>
    public bool TryApply(ParseResult parseResult, VmOptions options, out VmOptions applied, out string? error)
    {
        applied = options;
        error = null;
        var numaGiven = parseResult.GetResult(Numa) is { Implicit: false };
        var nodeGiven = parseResult.GetResult(VcpuNode) is { Implicit: false };
        if ((numaGiven || nodeGiven) && options.Accelerator != AcceleratorKind.Emulated)
        {
            error = $"{(numaGiven ? "--numa" : "--vcpu-node")} needs --accel emulated: it shapes the simulated host's NUMA nodes, and the kvm accelerator's host is the real machine";
            return false;
        }

        var nodes = parseResult.GetValue(Numa);
        var home = parseResult.GetValue(VcpuNode);
        if (home >= nodes)
        {
            error = $"--vcpu-node {home} is not a node of the host: with --numa {nodes} the nodes are 0 to {nodes - 1}";
            return false;
        }

        applied = options with { NumaNodes = numaGiven ? nodes : null, VcpuNode = nodeGiven ? home : null };
        return true;
    }
}
