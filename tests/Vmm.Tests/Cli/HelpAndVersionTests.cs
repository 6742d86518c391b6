using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

public sealed class HelpAndVersionTests
{
    [Test]
    public void HelpListsTheDemoCommandAndTheGlobalLogLevel()
    {
        var result = Hv.Run("--help");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.Stdout, Does.Contain("Usage:").And.Contain("hv [command] [options]"));
            Assert.That(result.StdoutLines, Has.Some.Match(@"^\s+demo\s"));
            Assert.That(result.Stdout, Does.Contain("--log-level"));
        });
    }

    [Test]
    public void NotifierDemoHelpListsItsOptionsAndTheInheritedLogLevel()
    {
        var result = Hv.Run("demo", "notifier", "--help");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stdout, Does.Contain("hv demo notifier [options]"));
            Assert.That(result.Stdout, Does.Contain("--seed").And.Contain("--ranges").And.Contain("--plain").And.Contain("--log-level"));
        });
    }

    [Test]
    public void VersionPrintsHvAndItsVersion()
    {
        var result = Hv.Run("--version");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stdout.TrimEnd(), Does.Match(@"^hv \d+\.\d+"));
            Assert.That(result.Stderr, Is.Empty);
        });
    }

    [Test]
    public void LogLevelIsAcceptedAfterTheSubcommand()
    {
        var result = Hv.Run("demo", "notifier", "--plain", "--ranges", "0", "--log-level", "none");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
    }
}
