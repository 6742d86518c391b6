using System.Globalization;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run IMAGE [IMAGE ...]</c> and <c>--vms N</c>: several VMs on one host, each console line prefixed with its
/// VM's index, one report column per VM plus the host, the exit status (the first non-zero code in VM order), one VM
/// exactly as before, and the bad input: <c>--vms 0</c>, more VMs than the host holds, <c>--vms</c> with several
/// images, several VMs under kvm.
/// </summary>
public sealed class RunSeveralVmsTests
{
    [TestCase(2)]
    [TestCase(4)]
    [Category(TestCategories.Guest)]
    public void HelloCopiesEachPrintTheirGreetingUnderTheirPrefixAndExitZero(int count)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", count.ToString(CultureInfo.InvariantCulture));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            for (var i = 0; i < count; i++)
            {
                Assert.That(result.StdoutLines.Count(l => l == $"[{i}] Hello from the guest"), Is.EqualTo(1), $"VM {i}'s greeting, once");
            }

            Assert.That(result.StdoutLines.Count(l => l.EndsWith("Hello from the guest", StringComparison.Ordinal)), Is.EqualTo(count), "no line without its prefix");
            Assert.That(result.Stdout, Does.Contain($"hv run hello.elf --vms {count}: all {count} VMs exited with code 0, exit status 0"));
        });
    }

    [TestCase(2)]
    [TestCase(4)]
    [Category(TestCategories.Guest)]
    public void MemtestCopiesEachVerifyTheirMemoryAndTheHostColumnSumsThem(int count)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--vms", count.ToString(CultureInfo.InvariantCulture), "-m", "16", "--cmdline", "mib=2");
        var table = PlainTable.After(result.StdoutLines, $"hv run memtest.elf --vms {count}: all {count} VMs exited with code 0, exit status 0");
        var resident = table.Rows.Single(r => r[0] == "resident pages");
        var frames = table.Rows.Single(r => r[0] == "host frames in use");
        var instructions = table.Rows.Single(r => r[0] == "instructions");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(table.Headers, Is.EqualTo(new[] { "figure" }.Concat(Enumerable.Range(0, count).Select(i => $"[{i}] memtest.elf")).Append("host")));
            for (var i = 0; i < count; i++)
            {
                Assert.That(result.StdoutLines, Does.Contain($"[{i}] memtest: OK, 262144 words verified"));
                Assert.That(table.Cell(table.Rows.Single(r => r[0] == "exit"), $"[{i}] memtest.elf"), Is.EqualTo("code 0"));
            }

            var perVm = Enumerable.Range(1, count).Select(i => Number(resident[i])).ToList();
            Assert.That(perVm, Has.All.GreaterThanOrEqualTo(512), "each VM touched its 2 MiB");
            Assert.That(Number(resident[^1]), Is.EqualTo(perVm.Sum()), "the host's resident pages are the VMs' sum");
            Assert.That(Number(frames[^1].Split(" of ")[0]), Is.GreaterThanOrEqualTo(perVm.Sum()), "one frame pool holds every VM's pages");
            Assert.That(Number(instructions[^1]), Is.EqualTo(Enumerable.Range(1, count).Sum(i => Number(instructions[i]))));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void BeyondEightVmsTheReportHasARowPerVmAndOneForTheHost()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "9", "-m", "16");
        var table = PlainTable.After(result.StdoutLines, "hv run hello.elf --vms 9: all 9 VMs exited with code 0, exit status 0");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(table.Headers[0], Is.EqualTo("VM"));
            Assert.That(table.Column("VM"), Is.EqualTo(Enumerable.Range(0, 9).Select(i => $"[{i}] hello.elf").Append("host")));
            Assert.That(table.Column("exit"), Is.EqualTo(Enumerable.Repeat("code 0", 9).Append("status 0")));
            var resident = table.Column("resident pages").Select(Number).ToList();
            Assert.That(resident[^1], Is.EqualTo(resident.Take(9).Sum()));
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("host frames in use: ", StringComparison.Ordinal)), result.Stdout);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void SeveralImagesBootAsOneVmEachInTheOrderGiven()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), GuestImages.ImagePath("memtest"), "-m", "16", "--cmdline", "mib=2");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines, Does.Contain("[0] Hello from the guest"));
            Assert.That(result.StdoutLines, Does.Contain("[0] cmdline: mib=2"));
            Assert.That(result.StdoutLines, Does.Contain("[1] memtest: OK, 262144 words verified"));
            Assert.That(result.Stdout, Does.Not.Contain("[1] Hello"));
            Assert.That(result.Stdout, Does.Contain("hv run hello.elf memtest.elf: all 2 VMs exited with code 0, exit status 0"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void OneFailingGuestMakesItsCodeTheExitStatus()
    {
        // memtest cannot fit 2000 MiB in 16 MiB of RAM and exits with code 2; hello ignores the argument.
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), GuestImages.ImagePath("memtest"), "-m", "16", "--cmdline", "mib=2000");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.StdoutLines, Does.Contain("[0] Hello from the guest"));
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("[1] ", StringComparison.Ordinal) && l.Contains("does not fit", StringComparison.Ordinal)), result.Stdout);
            Assert.That(result.Stdout, Does.Contain("hv run hello.elf memtest.elf: 1 of 2 VMs exited with code 0, the first other is VM 1 (code 2), exit status 2"));
        });
    }

    [TestCase("memtest", "workingset", 2)]
    [TestCase("workingset", "memtest", 1)]
    [Category(TestCategories.Guest)]
    public void WhenSeveralGuestsFailTheFirstInVmOrderGivesTheExitStatus(string first, string second, int expected)
    {
        // memtest exits with code 2 (2000 MiB do not fit), workingset with code 1 (the page it was told to corrupt).
        const string cmdline = "mib=2000 hot=1 cold=1 passes=1 hotper=2 corrupt=5";
        var result = Hv.Run("run", GuestImages.ImagePath(first), GuestImages.ImagePath(second), "-m", "16", "--cmdline", cmdline);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(expected), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain($"0 of 2 VMs exited with code 0, the first other is VM 0 (code {expected}), exit status {expected}"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void VmsStoppedAtALimitGiveTheLimitStatus()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--vms", "2", "-m", "16", "--max-instructions", "5000");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(4), result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines.Count(l => l.StartsWith("[0] ", StringComparison.Ordinal) && l.Contains("instruction limit", StringComparison.OrdinalIgnoreCase)), Is.EqualTo(1), result.Stdout);
            Assert.That(result.Stdout, Does.Contain("exit status 4"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void UnderAHostMemoryLimitEachVmGetsItsOwnCgroupAndTheHostSwapsForAll()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--vms", "2", "-m", "32", "--cmdline", "mib=8", "--host-mem", "4M", "--swap", "zram");
        var table = PlainTable.After(result.StdoutLines, "hv run memtest.elf --vms 2: all 2 VMs exited with code 0, exit status 0");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(table.Rows.Single(r => r[0] == "cgroup limit").Take(3), Is.EqualTo(new[] { "cgroup limit", "4 MiB", "4 MiB" }));
            Assert.That(Number(table.Rows.Single(r => r[0] == "pswpout")[^1]), Is.Positive, "8 MiB written under a 4 MiB limit must swap");
            Assert.That(result.StdoutLines, Does.Contain("[0] memtest: OK, 1048576 words verified"));
            Assert.That(result.StdoutLines, Does.Contain("[1] memtest: OK, 1048576 words verified"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void OneVmIsExactlyAsBefore()
    {
        var plain = Hv.Run("run", GuestImages.ImagePath("hello"));
        var one = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "1");

        Assert.Multiple(() =>
        {
            Assert.That(one.ExitCode, Is.Zero);
            Assert.That(one.StdoutLines[0], Is.EqualTo("Hello from the guest"), "no prefix with one VM");
            Assert.That(one.StdoutLines[1], Is.EqualTo("hv run hello.elf: the guest exited with code 0, exit status 0"));
            Assert.That(Figures(one.StdoutLines), Is.EqualTo(Figures(plain.StdoutLines)), "the same report rows");
        });
    }

    [TestCase("0", "--vms expects a whole number from 1 to 1024, got '0'")]
    [TestCase("-1", "--vms expects a whole number from 1 to 1024, got '-1'")]
    [TestCase("1000", "--vms 1000: 1000 VMs of 128 MiB do not fit one host: at most 454")]
    public void AVmCountOutOfRangeIsAUsageError(string count, string words)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", count);

        AssertUsageError(result, words);
    }

    [Test]
    public void VmsOfTheLargestGuestRamAreBoundedByTheHostsLargestRam()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "-m", "3G", "--vms", "19");

        AssertUsageError(result, "--vms 19: 19 VMs of 3072 MiB do not fit one host: at most 18");
    }

    [Test]
    public void VmsWithSeveralImagesIsAUsageError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), GuestImages.ImagePath("memtest"), "--vms", "2");

        AssertUsageError(result, "--vms 2 boots copies of one image; with 2 images (hello.elf, memtest.elf)");
    }

    [Test]
    public void SeveralVmsUnderKvmAreAUsageError()
    {
        // The rule holds whether or not /dev/kvm is here: it is checked before KVM is opened.
        var copies = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "2", "--accel", "kvm");
        var images = Hv.Run("run", GuestImages.ImagePath("hello"), GuestImages.ImagePath("hello"), "--accel", "kvm");

        AssertUsageError(copies, "--vms 2 needs --accel emulated: several VMs share one simulated host");
        AssertUsageError(images, "2 images needs --accel emulated: several VMs share one simulated host");
    }

    private static void AssertUsageError(CliResult result, string words)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.Stderr, Does.StartWith("hv: error: "));
            Assert.That(result.Stderr, Does.Contain(words));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    // The report's figure names, in order (the values differ from run to run).
    private static List<string> Figures(IReadOnlyList<string> lines) =>
        PlainTable.After(lines, "hv run hello.elf: the guest exited with code 0, exit status 0").Rows.Select(r => r[0]).ToList();

    private static long Number(string cell) => long.Parse(cell, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
}
