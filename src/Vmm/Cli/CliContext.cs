namespace Hypervisor.Vmm.Cli;

/// <summary>Where a command writes, and whether its standard output is an interactive terminal.</summary>
/// <param name="output">Standard output: results, tables, help.</param>
/// <param name="error">Standard error: error lines (logging goes to the process's own stderr).</param>
/// <param name="isTerminal">True when <paramref name="output"/> is a terminal, so styled tables may be used.</param>
internal sealed class CliContext(TextWriter output, TextWriter error, bool isTerminal)
{
    /// <summary>Standard output.</summary>
    public TextWriter Output { get; } = output;

    /// <summary>Standard error.</summary>
    public TextWriter Error { get; } = error;

    /// <summary>True when <see cref="Output"/> is an interactive terminal.</summary>
    public bool IsTerminal { get; } = isTerminal;
}
