using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>Runs <c>hv</c> in-process, capturing standard output and error.</summary>
public static class Hv
{
    /// <summary>Runs through the public entry, as Main does but with captured writers.</summary>
    public static CliResult Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Program.Run(args, stdout, stderr);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs a command tree that a test extended (through <paramref name="extend"/>) before parsing.</summary>
    internal static CliResult Run(Action<HvCli> extend, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var cli = new HvCli(new CliContext(stdout, stderr, isTerminal: false));
        extend(cli);
        var exitCode = cli.Invoke(args);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }
}
