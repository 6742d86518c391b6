using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

public sealed class UsageErrorTests
{
    [TestCase("demo --ranges -3", "--ranges", "'-3'")]
    [TestCase("demo --ranges=-3", "--ranges", "'-3'")]
    [TestCase("demo --ranges 65", "--ranges", "from 0 to 64")]
    [TestCase("demo host --ranges 65", "--ranges", "from 0 to 64")]
    [TestCase("demo notifier --ranges -3", "--ranges", "'-3'")]
    [TestCase("demo --seed abc", "--seed", "'abc'")]
    [TestCase("demo host --seed", "--seed", "missing")]
    [TestCase("frobnicate", "frobnicate", "Unrecognized")]
    [TestCase("demo frobnicate", "frobnicate", "Unrecognized")]
    [TestCase("demo host extra", "extra", "Unrecognized")]
    [TestCase("demo notifier extra", "extra", "Unrecognized")]
    [TestCase("--log-level Verbose demo", "--log-level", "'Verbose'")]
    [TestCase("", "needs a command", "demo")]
    [TestCase("demo swap --mem 64M --host-mem 32M", "32 MiB", "no less than 4x")]
    [TestCase("demo swap --hot 8 --cold 8 --ws-host-mem 32M", "32 MiB", "but not both sets")]
    [TestCase("demo swap --lru lifo", "--lru", "classic or mglru")]
    public void BadCommandLinePrintsOneErrorLineAndExitsTwo(string commandLine, string names, string rule)
    {
        var result = Hv.Run(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: "));
            Assert.That(result.StderrLines[0], Does.Contain(names).And.Contain(rule));
            Assert.That(result.Stderr, Does.Not.Contain(" at "), "no stack trace");
            Assert.That(result.Stdout, Is.Empty, "no help dump on errors");
        });
    }

    [Test]
    public void SeveralBadValuesAreAllNamedOnTheSameLine()
    {
        var result = Hv.Run("demo", "--seed", "x", "--ranges", "99");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.Contain("--seed").And.Contain("--ranges"));
        });
    }

    [TestCase(new[] { "demo", "--ranges", "-3" }, "(see 'hv demo --help')")]
    [TestCase(new[] { "demo", "host", "--ranges", "-3" }, "(see 'hv demo host --help')")]
    [TestCase(new[] { "demo", "notifier", "--ranges", "-3" }, "(see 'hv demo notifier --help')")]
    public void ErrorLinePointsAtTheHelpOfTheCommandAsTyped(string[] args, string pointer)
    {
        var result = Hv.Run(args);

        Assert.That(result.StderrLines[0], Does.EndWith(pointer));
    }
}
