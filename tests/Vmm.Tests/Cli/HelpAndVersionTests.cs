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
            Assert.That(result.Stdout, Does.Not.Contain("Scenario"), "command lists show one line per command");
        });
    }

    [TestCase("zap", "1G")]
    [TestCase("age", "1G")]
    [TestCase("fault", "256M")]
    [TestCase("tlb", "1M")]
    public void BenchHelpShowsTheSizeDefaultAsASize(string operation, string size)
    {
        var result = Hv.Run("bench", operation, "--help");
        var help = string.Join(' ', result.Stdout.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(help, Does.Match(@"--size <SIZE> Guest memory covered: [^\[]*\[default: " + size + @"\]"), result.Stdout);
        });
    }

    [Test]
    public void DemoHelpDescribesTheHostDemoAndListsItsOptionsAndSubcommand()
    {
        var result = Hv.Run("demo", "--help");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.Stdout, Does.Contain("hv demo [command] [options]"));
            Assert.That(result.Stdout, Does.Contain("host memory manager").And.Contain("primary MMU").And.Contain("Linux's order"));
            Assert.That(result.Stdout, Does.Contain("Scenario (each step is a mark in the timeline):"));
            Assert.That(result.Stdout, Does.Contain("copy-on-write").And.Contain("MADV_DONTNEED").And.Contain("mremap").And.Contain("fork"));
            Assert.That(result.Stdout, Does.Contain("Exit code 1 if the auditor finds the host inconsistent."));
            Assert.That(result.Stdout, Does.Contain("--seed").And.Contain("--ranges").And.Contain("--plain").And.Contain("--log-level"));
            Assert.That(result.StdoutLines, Has.Some.Match(@"^\s+host, notifier\s"));
        });
    }

    [TestCase("host")]
    [TestCase("notifier")]
    public void DemoHostHelpAndItsFormerNameListTheOptionsAndTheInheritedLogLevel(string name)
    {
        var result = Hv.Run("demo", name, "--help");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stdout, Does.Contain("hv demo host [options]"));
            Assert.That(result.Stdout, Does.Contain("The same run as 'hv demo'"));
            Assert.That(result.Stdout, Does.Contain("Scenario (each step is a mark in the timeline):"));
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
        var result = Hv.Run("demo", "--plain", "--ranges", "0", "--log-level", "none");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
    }
}
