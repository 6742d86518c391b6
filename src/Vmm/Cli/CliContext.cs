namespace Hypervisor.Vmm.Cli;

/// <summary>Where a command writes, and whether its standard output is an interactive terminal.</summary>
/// <param name="output">Standard output: results, tables, help.</param>
/// <param name="error">Standard error: error lines (logging goes to the process's own stderr).</param>
/// <param name="isTerminal">True when <paramref name="output"/> is a terminal, so styled tables may be used.</param>
/// <remarks>
/// While a command runs under <c>--json</c> (<see cref="Report"/> set with <see cref="ReportSession.Json"/>),
/// <see cref="Output"/> is standard error and <see cref="IsTerminal"/> is false: the guest's console and the progress
/// lines go to standard error as plain text, and standard output holds only the JSON document
/// (<see cref="StandardOutput"/>).
/// </remarks>
internal sealed class CliContext(TextWriter output, TextWriter error, bool isTerminal)
{
    /// <summary>Standard output; standard error under <c>--json</c>.</summary>
    public TextWriter Output => Report is { Json: true } ? Error : StandardOutput;

    /// <summary>Standard error.</summary>
    public TextWriter Error { get; } = error;

    /// <summary>True when <see cref="Output"/> is an interactive terminal (never under <c>--json</c>).</summary>
    public bool IsTerminal => isTerminal && Report is not { Json: true };

    /// <summary>Standard output itself, whatever <see cref="Report"/> says.</summary>
    public TextWriter StandardOutput { get; } = output;

    /// <summary>The running command's <c>--json</c> / <c>--report</c> session; null without them.</summary>
    public ReportSession? Report { get; set; }
}
