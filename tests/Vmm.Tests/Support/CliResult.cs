namespace Hypervisor.Vmm.Tests.Support;

/// <summary>What one in-process run of <c>hv</c> produced.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public IReadOnlyList<string> StderrLines =>
        Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();

    public IReadOnlyList<string> StdoutLines => Stdout.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
}
