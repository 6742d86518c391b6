using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The exit codes of <c>hv</c>. <c>hv run</c> returns the guest's own code when the guest exited, so a guest code from
/// 1 to 5 looks like one of these; its report's title says which it is.
/// </summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>
    /// Bad input or environment: a missing or bad image (an <see cref="Notifier.IInputError"/> other than an option's), an
    /// I/O or permission error, KVM unavailable.
    /// </summary>
    public const int InputError = 1;

    /// <summary>The command line itself was wrong: unknown command, bad or missing option value, options that do not go together.</summary>
    public const int UsageError = 2;

    /// <summary><c>hv run</c>: the guest triple-faulted or the VM could not continue (<see cref="VmExitStatus.Broken"/>).</summary>
    public const int VmBroken = VmExitStatus.Broken;

    /// <summary><c>hv run</c>: the run hit <c>--timeout</c> or <c>--max-instructions</c> (<see cref="VmExitStatus.Limit"/>).</summary>
    public const int Limit = VmExitStatus.Limit;

    /// <summary><c>hv run</c>: the guest halted with nothing that could wake it (<see cref="VmExitStatus.Halted"/>).</summary>
    public const int Halted = VmExitStatus.Halted;

    /// <summary>
    /// A demonstration whose checks all held but which ran too briefly to show what it is for (<c>hv demo stress</c>: some
    /// mechanism never acted in <c>--duration</c>); running it longer, or leaving that part out, decides it.
    /// </summary>
    public const int Inconclusive = 6;

    /// <summary>An internal error: a bug in <c>hv</c> (EX_SOFTWARE of sysexits.h). The stack is shown at <c>--log-level Debug</c>.</summary>
    public const int InternalError = 70;
}
