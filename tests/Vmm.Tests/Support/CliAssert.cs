using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>The CLI's rule for expected errors, asserted one way everywhere: one <c>hv: error:</c> line, the exit code, no stack trace.</summary>
public static class CliAssert
{
    /// <summary>
    /// <paramref name="result"/> exited with <paramref name="exitCode"/> (default 2, a usage error) after exactly one
    /// standard-error line that starts with <c>hv: error: </c> and contains <paramref name="message"/>, and no stack trace.
    /// </summary>
    public static void OneErrorLine(CliResult result, string message, int exitCode = ExitCodes.UsageError)
    {
        ArgumentNullException.ThrowIfNull(result);
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(exitCode), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines.FirstOrDefault(), Does.StartWith("hv: error: ").And.Contain(message));
            Assert.That(result.Stderr, Does.Not.Contain("   at "), "no stack trace");
        });
    }
}
