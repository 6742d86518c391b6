using System.CommandLine;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Support;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>Failures escaping a command, through the real invocation path (a test command added to the tree).</summary>
public sealed class CliErrorHandlerTests
{
    private static CliResult RunFailing(Action failure, params string[] extraArgs) =>
        Hv.Run(
            cli =>
            {
                var command = new Command("fail", "test command that throws");
                command.SetAction(_ =>
                {
                    failure();
                    return 0;
                });
                cli.Root.Subcommands.Add(command);
            },
            ["fail", .. extraArgs]);

    [Test]
    public void DomainArgumentExceptionIsOneLineWithItsMessageAndExitsOne()
    {
        var result = RunFailing(() => InvalidRangeException.ThrowIfInvalidPageRange(new Hva(0x2000), new Hva(0x1000)));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: range [0x2000, 0x1000) is empty or reversed: end must be above start" }));
        });
    }

    [Test]
    public void DomainInvalidOperationExceptionIsOneLineAndExitsOne()
    {
        var result = RunFailing(() =>
        {
            var mm = new StubMm(7);
            mm.Notifiers.Release();
            mm.Notifiers.Release();
        });

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: ").And.Contain("mm 7"));
            Assert.That(result.Stderr, Does.Not.Contain(CliErrorHandler.DetailsHint));
        });
    }

    [Test]
    public void IoErrorIsOneLineAndExitsOne()
    {
        var result = RunFailing(() => File.ReadAllBytes(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "missing.img")));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: ").And.Contain("missing.img"));
        });
    }

    [Test]
    public void UnexpectedExceptionIsOneLineWithAHintAndNoStack()
    {
        var result = RunFailing(() => throw new NullReferenceException("boom"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { $"hv: error: unexpected NullReferenceException: boom {CliErrorHandler.DetailsHint}" }));
        });
    }

    [TestCase("Debug")]
    [TestCase("Trace")]
    public void UnexpectedExceptionShowsItsStackAtDebug(string level)
    {
        var result = RunFailing(() => throw new NullReferenceException("boom"), "--log-level", level);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(result.StderrLines[0], Is.EqualTo("hv: error: unexpected NullReferenceException: boom"));
            Assert.That(result.StderrLines.Skip(1), Has.Some.Contains("System.NullReferenceException: boom"));
            Assert.That(result.StderrLines.Skip(1), Has.Some.Match(@"^\s+at "));
        });
    }

    [Test]
    public void ExpectedExceptionAlsoShowsItsStackAtDebug()
    {
        var result = RunFailing(() => throw new IOException("disk gone"), "--log-level", "Debug");

        Assert.Multiple(() =>
        {
            Assert.That(result.StderrLines[0], Is.EqualTo("hv: error: disk gone"));
            Assert.That(result.StderrLines, Has.Count.GreaterThan(1));
        });
    }

    [Test]
    public void MultiLineMessagesAreFlattenedToOneLine()
    {
        var result = RunFailing(() => throw new InvalidOperationException("first line\n  second line\r\nthird"));

        Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: first line second line third" }));
    }

    [Test]
    public void SingleInnerAggregateIsReportedAsItsInnerException()
    {
        using var error = new StringWriter();
        var exitCode = new CliErrorHandler(error).Report(new AggregateException(new ArgumentException("bad value 3: must be even")), LogLevel.Warning);

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(ExitCodes.RuntimeError));
            Assert.That(error.ToString(), Is.EqualTo("hv: error: bad value 3: must be even" + Environment.NewLine));
        });
    }

    [TestCase(typeof(ArgumentOutOfRangeException), true)]
    [TestCase(typeof(ObjectDisposedException), true)]
    [TestCase(typeof(FileNotFoundException), true)]
    [TestCase(typeof(UnauthorizedAccessException), true)]
    [TestCase(typeof(NullReferenceException), false)]
    [TestCase(typeof(IndexOutOfRangeException), false)]
    public void ExpectedFailuresAreBadInputAndIo(Type type, bool expected)
    {
        var exception = type == typeof(ObjectDisposedException)
            ? new ObjectDisposedException("channel")
            : (Exception)Activator.CreateInstance(type)!;

        Assert.That(CliErrorHandler.IsExpected(exception), Is.EqualTo(expected));
    }
}
