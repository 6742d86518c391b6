using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

public sealed class UsageErrorTests
{
    [TestCase("demo notifier --ranges -3", "--ranges", "'-3'")]
    [TestCase("demo notifier --ranges=-3", "--ranges", "'-3'")]
    [TestCase("demo notifier --ranges 65", "--ranges", "from 0 to 64")]
    [TestCase("demo notifier --seed abc", "--seed", "'abc'")]
    [TestCase("demo notifier --seed", "--seed", "missing")]
    [TestCase("frobnicate", "frobnicate", "Unrecognized")]
    [TestCase("demo frobnicate", "frobnicate", "Unrecognized")]
    [TestCase("demo notifier extra", "extra", "Unrecognized")]
    [TestCase("--log-level Verbose demo notifier", "--log-level", "'Verbose'")]
    [TestCase("", "needs a command", "demo")]
    [TestCase("demo", "needs a command", "notifier")]
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
        var result = Hv.Run("demo", "notifier", "--seed", "x", "--ranges", "99");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.Contain("--seed").And.Contain("--ranges"));
        });
    }

    [Test]
    public void ErrorLinePointsAtTheHelpOfTheCommandThatFailed()
    {
        var result = Hv.Run("demo", "notifier", "--ranges", "-3");

        Assert.That(result.StderrLines[0], Does.EndWith("(see 'hv demo notifier --help')"));
    }
}
