using System.CommandLine;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// Failures escaping a command, through the real invocation path (a test command added to the tree): input errors
/// (<see cref="IInputError"/>) and environment failures are one <c>hv: error:</c> line with exit 1, or 2 for a bad
/// option; anything else is an internal error (exit 70) whose stack appears at <c>--log-level Debug</c>.
/// </summary>
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
    public void AnInputErrorIsOneLineWithItsMessageAndExitsOne()
    {
        var result = RunFailing(() => ElfImage.Parse([1, 2, 3]));

        Assert.Multiple(() =>
        {
            CliAssert.OneErrorLine(result, "truncated", ExitCodes.InputError);
            Assert.That(result.Stderr, Does.Not.Contain("Parameter"));
        });
    }

    [Test]
    public void AnInputErrorOfAnotherLayerIsOneLineToo()
    {
        var result = RunFailing(() => throw new MemslotException(MemslotError.UnalignedSize, 0, "memslot 0: size 0x123 is not page-aligned: it must be a multiple of 4096", "size"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.InputError), result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: memslot 0: size 0x123 is not page-aligned: it must be a multiple of 4096" }));
        });
    }

    [Test]
    public void ABadVmOptionIsAUsageError()
    {
        var result = RunFailing(() => new VmOptions { CpuCount = 0 }.Validate());

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: vCPU count must be 1 to 64, got 0" }));
        });
    }

    [Test]
    public void AnIoErrorIsOneLineAndExitsOne()
    {
        var result = RunFailing(() => File.ReadAllBytes(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "missing.img")));

        CliAssert.OneErrorLine(result, "missing.img", ExitCodes.InputError);
    }

    [Test]
    public void KvmBeingUnavailableIsOneLineAndExitsOne()
    {
        var result = RunFailing(() => throw new KvmUnavailableException("open(/dev/kvm)", 2, "/dev/kvm does not exist"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.InputError));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: open(/dev/kvm) failed with errno 2 (ENOENT): /dev/kvm does not exist" }));
        });
    }

    [Test]
    public void ABrokenInvariantIsAnInternalErrorNotATypo()
    {
        // An InvalidOperationException without the input marker: a state the code should never reach.
        var result = RunFailing(() => throw new InvalidOperationException("spte 0x1234 maps a free frame"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.InternalError));
            Assert.That(result.ExitCode, Is.EqualTo(70), "EX_SOFTWARE");
            Assert.That(result.StderrLines, Is.EqualTo(new[] { $"hv: internal error: InvalidOperationException: spte 0x1234 maps a free frame {CliErrorHandler.DetailsHint}" }));
        });
    }

    [Test]
    public void AnUnmarkedArgumentExceptionIsAnInternalErrorToo()
    {
        var result = RunFailing(() => throw new ArgumentOutOfRangeException("size", 3, "port accesses are 1, 2 or 4 bytes"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.InternalError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.StartWith("hv: internal error: ArgumentOutOfRangeException: "));
        });
    }

    [TestCase("Debug")]
    [TestCase("Trace")]
    public void AnInternalErrorShowsItsStackAtDebug(string level)
    {
        var result = RunFailing(() => throw new NullReferenceException("boom"), "--log-level", level);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.InternalError));
            Assert.That(result.StderrLines[0], Is.EqualTo("hv: internal error: NullReferenceException: boom"));
            Assert.That(result.StderrLines.Skip(1), Has.Some.Contains("System.NullReferenceException: boom"));
            Assert.That(result.StderrLines.Skip(1), Has.Some.Match(@"^\s+at "));
        });
    }

    [Test]
    public void AnInternalErrorHasNoStackByDefault()
    {
        var result = RunFailing(() => throw new NullReferenceException("boom"));

        Assert.That(result.StderrLines, Is.EqualTo(new[] { $"hv: internal error: NullReferenceException: boom {CliErrorHandler.DetailsHint}" }));
    }

    [Test]
    public void AnInputErrorAlsoShowsItsStackAtDebug()
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
        var result = RunFailing(() => throw new IOException("first line\n  second line\r\nthird"));

        Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: first line second line third" }));
    }

    [Test]
    public void SingleInnerAggregateIsReportedAsItsInnerException()
    {
        using var error = new StringWriter();
        var inner = new BootImageException(BootImageRule.Truncated, "image of 3 bytes is truncated");
        var exitCode = new CliErrorHandler(error).Report(new AggregateException(inner), LogLevel.Warning);

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(ExitCodes.InputError));
            Assert.That(error.ToString(), Is.EqualTo("hv: error: image of 3 bytes is truncated" + Environment.NewLine));
        });
    }

    [TestCase(typeof(FileNotFoundException), ExitCodes.InputError)]
    [TestCase(typeof(UnauthorizedAccessException), ExitCodes.InputError)]
    [TestCase(typeof(KvmUnavailableException), ExitCodes.InputError)]
    [TestCase(typeof(ArgumentOutOfRangeException), ExitCodes.InternalError)]
    [TestCase(typeof(InvalidOperationException), ExitCodes.InternalError)]
    [TestCase(typeof(ObjectDisposedException), ExitCodes.InternalError)]
    [TestCase(typeof(NullReferenceException), ExitCodes.InternalError)]
    [TestCase(typeof(IndexOutOfRangeException), ExitCodes.InternalError)]
    public void OnlyInputAndEnvironmentFailuresAreExpected(Type type, int exitCode)
    {
        var exception = type == typeof(ObjectDisposedException)
            ? new ObjectDisposedException("channel")
            : (Exception)Activator.CreateInstance(type)!;

        Assert.Multiple(() =>
        {
            Assert.That(CliErrorHandler.ExitCodeOf(exception), Is.EqualTo(exitCode));
            Assert.That(CliErrorHandler.IsInputOrEnvironment(exception), Is.EqualTo(exitCode != ExitCodes.InternalError));
        });
    }
}
