using System.CommandLine;

namespace Hypervisor.Vmm;

/// <summary>The <c>hv</c> command line.</summary>
public static class Program
{
    /// <summary>Parses the command line and runs the chosen command.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("hv: a KVM-like hypervisor whose subject is the secondary MMU.");
        return root.Parse(args).Invoke();
    }
}
