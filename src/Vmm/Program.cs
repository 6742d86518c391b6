using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm;

/// <summary>The <c>hv</c> command line.</summary>
public static class Program
{
    /// <summary>Parses the command line and runs the chosen command on the process's console.</summary>
    /// <param name="args">The command-line arguments.</param>
    /// <returns>The process exit code: 0 on success, 1 for bad input or environment, 2 for a usage error, 70 for an internal
    /// error (a bug); <c>hv run</c> returns the guest's own code, or 3 or 4 (see its help).</returns>
    public static int Main(string[] args) =>
        Run(args, new CliContext(Console.Out, Console.Error, isTerminal: !Console.IsOutputRedirected));

    /// <summary>
    /// Runs <c>hv</c> in-process with its output going to <paramref name="stdout"/> and
    /// <paramref name="stderr"/>. Output is always plain text (no terminal styling).
    /// </summary>
    /// <param name="args">The command-line arguments.</param>
    /// <param name="stdout">Where normal output goes.</param>
    /// <param name="stderr">Where error lines go.</param>
    /// <returns>The exit code <see cref="Main"/> would return.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        return Run(args, new CliContext(stdout, stderr, isTerminal: false));
    }

    /// <summary>Runs <c>hv</c> against an explicit console context.</summary>
    internal static int Run(string[] args, CliContext context) => new HvCli(context).Invoke(args);
}
