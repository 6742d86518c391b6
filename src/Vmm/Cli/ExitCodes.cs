namespace Hypervisor.Vmm.Cli;

/// <summary>The exit codes of <c>hv</c>.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>The command line was valid but the run failed (bad input data, an I/O error, a bug).</summary>
    public const int RuntimeError = 1;

    /// <summary>The command line itself was wrong: unknown command, bad or missing option value.</summary>
    public const int UsageError = 2;
}
