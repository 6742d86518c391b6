using System.Text.RegularExpressions;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// QEMU's TCG as the oracle for the sample guests: the short cases boot under <c>qemu-system-x86_64 -accel tcg</c>
/// (PVH through <c>-kernel</c>, see <see cref="Qemu"/>) and under <c>hv run</c> with the same image, command line and
/// RAM, and must print the same console text and stop with the same status (QEMU's <c>(code&lt;&lt;1)|1</c> against
/// hv's own code). Timing lines (those that say <c>cycles</c>) are compared with their digits masked: QEMU's TSC
/// counts host time, ours retired instructions. Ignored, with the reason, where QEMU is not installed.
/// </summary>
public sealed partial class QemuOracleTests
{
    private const int MemoryMiB = 128;

    // (guest, cmdline): each well under a second under QEMU and about one under hv run, the error exits included.
    private static readonly (string Guest, string CommandLine, int Cpus)[] Cases =
    [
        ("hello", string.Empty, 1),
        ("hello", "x=1 y=0x2", 1),
        ("sieve", "n=100", 1),
        ("sieve", "n=100000", 1),
        ("sieve", "n=999999999", 1),
        ("memtest", "mib=2 seed=7", 1),
        ("memtest", "mib=2000", 1),
        ("pagetables", "ad=1", 1),
        ("pagetables", "rounds=3 ad=1", 1),
        ("timer", string.Empty, 1),   // QEMU TCG's APIC has no TSC-deadline mode (CPUID.1:ECX[24] clear): the guest skips that silent phase there
        ("timer", "ticks=20000 periods=3", 1),
        ("ksm", "pages=256 kinds=3 every=4", 1),
        ("workingset", "hot=1 cold=2 passes=2 hotper=2", 1),
        ("workingset", "hot=1 cold=1 passes=1 hotper=2 corrupt=300 fault=copy", 1),
        ("workingset", "hot=1 cold=1 passes=1 hotper=2 corrupt=255 fault=stale", 1),
        ("workingset", "hot=300 cold=300", 1),
        ("sse", string.Empty, 1),
        ("sse", "n=65536 rounds=1", 1),
        ("sse", "n=100", 1),
        ("smp", "rounds=50 mib=2", 2),
        ("smp", "rounds=50 mib=2", 4),
    ];

    [TestCaseSource(nameof(OracleCases))]
    [Category(TestCategories.Guest)]
    public void QemuTcgAndHvRunPrintTheSameTextAndStopWithTheSameStatus(string guest, string commandLine, int cpus)
    {
        var qemu = Qemu.Require();
        var image = GuestImages.ImagePath(guest);

        // QEMU runs in its own process while hv runs here: the two sides overlap.
        var qemuRun = Task.Run(() => Qemu.Run(qemu, image, commandLine, MemoryMiB, cpus));
        var (hvCode, hvText) = RunHv(image, commandLine, cpus);
        var oracle = qemuRun.GetAwaiter().GetResult();
        TestContext.Out.WriteLine($"QEMU status {oracle.ExitStatus}, hv run code {hvCode}\n{oracle.Console}");

        Assert.Multiple(() =>
        {
            Assert.That(oracle.TimedOut, Is.False, $"QEMU did not stop within {Qemu.Timeout.TotalSeconds:N0} s");
            Assert.That(oracle.ExitStatus % 2, Is.EqualTo(1), $"QEMU did not stop through isa-debug-exit: {oracle.Stderr}\n{oracle.Console}");
            Assert.That(oracle.Console, Is.Not.Empty, "the guest printed nothing under QEMU");
            Assert.That((hvCode << 1) | 1, Is.EqualTo(oracle.ExitStatus), "QEMU's status is (code<<1)|1 of hv run's guest code");
            Assert.That(MaskTimings(hvText), Is.EqualTo(MaskTimings(oracle.Console)));
        });
    }

    [Test]
    public void TheOracleCoversTheSampleGuestsTheIssueNames()
    {
        var guests = Cases.Select(c => c.Guest).ToHashSet();

        Assert.That(guests, Is.SupersetOf(new[] { "hello", "memtest", "sieve", "workingset", "timer", "sse", "smp" }));
        Assert.That(Cases.Where(c => c.Guest == "smp").Select(c => c.Cpus), Does.Contain(4), "smp runs with 4 vCPUs on both sides");
    }

    [Test]
    public void OnlyTheDigitsOfTimingLinesAreMasked()
    {
        var text = "workingset: hot 1 MiB (256 pages)\nworkingset: round 2: hot avg 801465 worst 867699 cycles\nOK, 2048 pages\n";

        Assert.That(MaskTimings(text), Is.EqualTo("workingset: hot 1 MiB (256 pages)\nworkingset: round #: hot avg # worst # cycles\nOK, 2048 pages\n"));
    }

    [Test]
    public void QemuBootsTheElfThroughPvhWithTheGuestsDevicesAndNoCmdlineWhenEmpty()
    {
        var withCmdline = Qemu.Arguments("g.elf", "x=1", "con.txt", 128);
        var without = Qemu.Arguments("g.elf", string.Empty, "con.txt", 128);
        var smp = Qemu.Arguments("g.elf", string.Empty, "con.txt", 128, cpus: 4);

        Assert.Multiple(() =>
        {
            Assert.That(string.Join(' ', withCmdline), Is.EqualTo(
                "-accel tcg -machine q35 -m 128M -smp 1 -display none -serial none -monitor none -no-reboot " +
                "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -debugcon file:con.txt -kernel g.elf -append x=1"));
            Assert.That(without, Does.Not.Contain("-append"));
            Assert.That(string.Join(' ', smp), Does.Contain("-smp 4 "));
        });
    }

    /// <summary>Replaces every run of digits by <c>#</c> on the lines that say <c>cycles</c>; other lines are kept as they are.</summary>
    internal static string MaskTimings(string text) =>
        string.Join('\n', text.Split('\n').Select(line => line.Contains("cycles", StringComparison.Ordinal) ? Digits().Replace(line, "#") : line));

    private static IEnumerable<TestCaseData> OracleCases() =>
        Cases.Select(c => new TestCaseData(c.Guest, c.CommandLine, c.Cpus).SetArgDisplayNames(
            (c.Cpus == 1 ? c.Guest : $"{c.Guest} --smp {c.Cpus}") + (c.CommandLine.Length == 0 ? string.Empty : $" {c.CommandLine}")));

    // hv run's guest code and the console text before its report (whose title line starts "hv run IMAGE: ").
    private static (int Code, string Text) RunHv(string image, string commandLine, int cpus)
    {
        var args = new List<string> { "run", image, "-m", $"{MemoryMiB}M", "--smp", $"{cpus}", "--plain" };
        if (commandLine.Length > 0)
        {
            args.Add("--cmdline");
            args.Add(commandLine);
        }

        var result = Hv.Run([.. args]);
        var title = $"hv run {Path.GetFileName(image)}: ";
        var newline = result.Stdout.IndexOf("\n" + title, StringComparison.Ordinal);
        var at = result.Stdout.StartsWith(title, StringComparison.Ordinal) ? 0 : newline < 0 ? -1 : newline + 1;
        Assert.That(at, Is.Not.Negative, $"no report title in hv run's output:\n{result.Stdout}{result.Stderr}");
        Assert.That(result.Stderr, Is.Empty);
        return (result.ExitCode, result.Stdout[..at]);
    }

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();
}
