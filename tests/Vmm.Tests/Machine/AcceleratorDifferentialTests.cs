using System.Diagnostics;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// The emulated-vs-KVM differential: the same image, command line and devices through <c>hv run --accel emulated</c>
/// and <c>hv run --accel kvm</c> give the same console transcript and the same exit status. Skipped, with the
/// reason, where /dev/kvm cannot be used; inconclusive, with KVM's exit reason, where KVM cannot run the guest.
/// </summary>
/// <remarks>KVM on the development machine runs guest code slowly (memtest mib=1 takes about 4 s), so the
/// cases are small; they run one after the other.</remarks>
[Category(TestCategories.Kvm)]
public sealed class AcceleratorDifferentialTests
{
    private const string Timeout = "120";

    // The register-dump lines both accelerators print after a VM breaks.
    private static readonly string[] Prefixes = ["RIP=", "RAX=", "RSI=", "R8 =", "R12=", "CR0=", "CS="];

    [OneTimeSetUp]
    public void RequireKvm()
    {
        if (!KvmAvailability.IsAvailable(out var why))
        {
            Assert.Ignore("KVM is not available here, so the emulated-vs-KVM differential is skipped: " + why);
        }
    }

    [TestCase("hello", "")]
    [TestCase("hello", "x=1 y=0x2")]
    [TestCase("memtest", "mib=1")]
    [TestCase("sieve", "n=100")]
    [TestCase("pagetables", "")]
    [Category(TestCategories.Guest)]
    public void BothAcceleratorsPrintTheSameAndExitTheSame(string guest, string commandLine)
    {
        var image = GuestImages.ImagePath(guest);
        var emulated = Run(image, "emulated", commandLine);
        var kvm = Run(image, "kvm", commandLine);
        TestContext.Out.WriteLine($"{guest} \"{commandLine}\": emulated {emulated.Elapsed.TotalMilliseconds:N0} ms, exit {emulated.Result.ExitCode}: {emulated.Title}");
        TestContext.Out.WriteLine($"{guest} \"{commandLine}\": kvm      {kvm.Elapsed.TotalMilliseconds:N0} ms, exit {kvm.Result.ExitCode}: {kvm.Title}");
        if (kvm.Title.Contains("could not continue", StringComparison.Ordinal))
        {
            Assert.Inconclusive($"KVM cannot run {guest} here: {string.Join(" ", kvm.Report.Take(4))}");
        }

        Assert.Multiple(() =>
        {
            Assert.That(emulated.Result.Stderr, Is.Empty, "emulated stderr");
            Assert.That(kvm.Result.Stderr, Is.Empty, "kvm stderr");
            Assert.That(kvm.Console, Is.EqualTo(emulated.Console), "console transcripts (kvm, then emulated)");
            Assert.That(kvm.Result.ExitCode, Is.EqualTo(emulated.Result.ExitCode), $"exit status; kvm report: {kvm.Title}");
            Assert.That(emulated.Result.ExitCode, Is.Zero, "every one of these guests succeeds");
        });
    }

    [TestCase("smp", "rounds=20 mib=1", 2)]
    [TestCase("timer", "deadline=0", 2)]
    [Category(TestCategories.Guest)]
    public void SeveralVcpusStartAndInterruptEachOtherTheSameOnBoth(string guest, string commandLine, int cpus)
    {
        // KVM gets the kernel's irqchip with more than one vCPU: its local APICs deliver the guest's INIT–SIPI, IPIs
        // and timer; the interpreter does the same with its own APICs and AP threads.
        var image = GuestImages.ImagePath(guest);
        var emulated = Run(image, "emulated", commandLine, cpus);
        var kvm = Run(image, "kvm", commandLine, cpus);
        TestContext.Out.WriteLine($"{guest} --smp {cpus}: emulated {emulated.Elapsed.TotalMilliseconds:N0} ms, kvm {kvm.Elapsed.TotalMilliseconds:N0} ms: {kvm.Title}");

        Assert.Multiple(() =>
        {
            Assert.That(kvm.Console, Is.EqualTo(emulated.Console), "console transcripts (kvm, then emulated)");
            Assert.That(kvm.Result.ExitCode, Is.EqualTo(emulated.Result.ExitCode), $"exit status; kvm report: {kvm.Title}");
            Assert.That(emulated.Result.ExitCode, Is.Zero, emulated.Title);
        });
    }

    [Test]
    public void ATripleFaultLeavesTheSameRegistersOnBoth()
    {
        var image = Path.Combine(Path.GetTempPath(), $"hv-triple-{Guid.NewGuid():N}.elf");
        File.WriteAllBytes(image, TestImages.TripleFault());
        try
        {
            var emulated = Run(image, "emulated", string.Empty);
            var kvm = Run(image, "kvm", string.Empty);

            // RFLAGS differs by design: KVM reports RF (bit 16) set after the fault, the interpreter does not model RF.
            string[] Registers(AcceleratorRun run) =>
                [.. run.Report.Where(l => Prefixes.Any(p => l.StartsWith(p, StringComparison.Ordinal))).Select(l => l.Split(" RFLAGS=")[0])];

            Assert.Multiple(() =>
            {
                Assert.That(emulated.Result.ExitCode, Is.EqualTo(3), emulated.Title);
                Assert.That(kvm.Result.ExitCode, Is.EqualTo(3), kvm.Title);
                Assert.That(Registers(kvm), Has.Length.EqualTo(Prefixes.Length), string.Join("\n", kvm.Report));
                Assert.That(Registers(kvm), Is.EqualTo(Registers(emulated)), "register dumps (kvm, then emulated)");
            });
        }
        finally
        {
            File.Delete(image);
        }
    }

    private static AcceleratorRun Run(string image, string accelerator, string commandLine, int cpus = 1)
    {
        var clock = Stopwatch.StartNew();
        var result = Hv.Run("run", image, "--accel", accelerator, "--plain", "--timeout", Timeout, "--smp", $"{cpus}", "--cmdline", commandLine);
        clock.Stop();
        var marker = $"hv run {Path.GetFileName(image)}";
        var at = result.Stdout.StartsWith(marker, StringComparison.Ordinal) ? 0 : result.Stdout.LastIndexOf("\n" + marker, StringComparison.Ordinal) + 1;
        if (at < 0 || !result.Stdout.AsSpan(at).StartsWith(marker, StringComparison.Ordinal))
        {
            Assert.Fail($"hv run --accel {accelerator} printed no report (exit {result.ExitCode}): {result.Stdout}{result.Stderr}");
        }

        var report = result.Stdout[at..].Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0 && !l.StartsWith('=')).ToList();
        return new AcceleratorRun(result, result.Stdout[..at], report[0], report, clock.Elapsed);
    }

    private sealed record AcceleratorRun(CliResult Result, string Console, string Title, IReadOnlyList<string> Report, TimeSpan Elapsed);
}
