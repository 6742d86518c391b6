using System.Diagnostics;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// Debian's Linux kernel boots on the interpreter to its initramfs, whose /init runs memtest and ends the VM with
/// memtest's status; the same files under QEMU's TCG print the same banner and userland lines and stop the same way.
/// Ignored, with the reason, where <c>make -C guests linux</c> has not been run (or QEMU is not installed). The default
/// run boots it once (under a host limit, beside QEMU); the other boots are the explicit <c>Linux</c> category.
/// </summary>
[Category(TestCategories.Guest)]
public sealed class LinuxGuestTests
{
    [Test]
    public void LinuxBootsToInitUnderAHostLimitRunsMemtestAndExitsWithItsStatusAsUnderQemu()
    {
        var (kernel, initrd) = LinuxGuest.Require();
        const string commandLine = LinuxGuest.CommandLine + " memtest.mib=64";
        var qemu = Qemu.FindOnPath();
        var qemuRun = qemu is null ? null : Task.Run(() => RunQemu(qemu, kernel, initrd, 256, commandLine));

        // 256 MiB of guest RAM under a 64 MiB host limit: the kernel and memtest's 64 MiB do not fit, so the host swaps.
        var hv = Hv.Run("run", kernel, "--initrd", initrd, "-m", "256M", "--host-mem", "64M", "--swap", "zram", "--cmdline", commandLine, "--plain", "--timeout", "600");
        TestContext.Out.WriteLine(hv.Stdout);
        var userland = LinuxGuest.UserlandLines(hv.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero, "memtest's status through port 0xF4");
            Assert.That(LinuxGuest.Banner(hv.Stdout), Does.StartWith("Linux version 6."));
            Assert.That(userland, Has.Some.StartsWith("init: Linux 6."), "/init ran and printed the kernel version");
            Assert.That(userland, Has.Some.EqualTo("memtest: OK, 8388608 words verified"));
            Assert.That(userland, Has.Some.EqualTo("init: memtest exited with status 0"));
            Assert.That(hv.Stdout, Does.Match(@"pswpout\s+[1-9]"), "guest pages went to swap under the limit");
            Assert.That(hv.Stdout, Does.Match(@"pswpin\s+[1-9]"), "and came back on the guest's faults");
        });

        if (qemuRun is null)
        {
            Assert.Ignore($"{Qemu.Executable} is not on PATH: hv's side passed; the QEMU comparison needs QEMU's TCG (apt-get install qemu-system-x86)");
        }

        var (status, console) = qemuRun!.GetAwaiter().GetResult();
        TestContext.Out.WriteLine($"QEMU status {status}\n{console}");
        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo((hv.ExitCode << 1) | 1), "QEMU's isa-debug-exit status is (code<<1)|1 of hv's");
            Assert.That(LinuxGuest.Banner(console), Is.EqualTo(LinuxGuest.Banner(hv.Stdout)));
            Assert.That(LinuxGuest.UserlandLines(console).Where(l => !l.StartsWith("init: MemTotal", StringComparison.Ordinal)),
                Is.EqualTo(userland.Where(l => !l.StartsWith("init: MemTotal", StringComparison.Ordinal))), "the same userland lines (MemTotal differs with the firmware's reservations)");
        });
    }

    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void TheBzImageBootsThroughTheLinuxProtocolAsFarAsTheVmlinux()
    {
        var (kernel, initrd) = LinuxGuest.RequireBzImage();

        var hv = Hv.Run("run", kernel, "--initrd", initrd, "-m", $"{LinuxGuest.MemoryMiB}M", "--cmdline", LinuxGuest.CommandLine, "--plain", "--timeout", "300");
        TestContext.Out.WriteLine(hv.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero, "memtest's status through port 0xF4");
            Assert.That(hv.StdoutLines.SingleOrDefault(l => l.StartsWith("boot ", StringComparison.Ordinal)), Does.Match(@"^boot\s+Linux\s"), "the bzImage's own 64-bit entry, not PVH");
            Assert.That(LinuxGuest.Banner(hv.Stdout), Does.StartWith("Linux version 6."), "the in-guest decompressor ran");
            Assert.That(hv.Stdout, Does.Contain("RAMDISK: [mem "), "the initrd from the zero page");
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.EqualTo("memtest: OK, 2097152 words verified"));
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.EqualTo("init: memtest exited with status 0"));
        });
    }

    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void LinuxRunsUnderAHostLimitBelowItsRam()
    {
        var (kernel, initrd) = LinuxGuest.Require();

        var hv = Hv.Run("run", kernel, "--initrd", initrd, "-m", $"{LinuxGuest.MemoryMiB}M", "--host-mem", "96M", "--swap", "zram",
            "--cmdline", LinuxGuest.CommandLine + " memtest.mib=128", "--plain", "--timeout", "300");
        TestContext.Out.WriteLine(hv.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero);
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.EqualTo("memtest: OK, 16777216 words verified"));
            Assert.That(hv.Stdout, Does.Match(@"pswpout\s+[1-9]"), "guest pages went to swap under the limit");
        });
    }

    [Explicit("a Linux boot each: the Linux category")]
    [Category(TestCategories.Linux)]
    [TestCase("poweroff", "ACPI power-off", TestName = "LinuxPowersOffThroughAcpiS5")]
    [TestCase("reboot", "the guest reset the machine", TestName = "LinuxRebootStopsTheVmAsNoRebootDoes")]
    public void LinuxEndsTheVmThroughTheKernel(string ending, string title)
    {
        var (kernel, initrd) = LinuxGuest.Require();

        var hv = Hv.Run("run", kernel, "--initrd", initrd, "-m", "256M", "--cmdline", $"{LinuxGuest.CommandLine} init.exit={ending}", "--plain", "--timeout", "300");
        TestContext.Out.WriteLine(hv.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero);
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.EqualTo("memtest: OK, 2097152 words verified"));
            Assert.That(hv.Stdout, Does.Contain(ending == "poweroff" ? "reboot: Power down" : "reboot: Restarting system"), "the kernel's own message");
            Assert.That(hv.Stdout, Does.Contain(title), "the report says how the VM ended");
        });
    }

    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void LinuxBringsUpTwoVcpusAndTheirClocksStayTogether()
    {
        var (kernel, initrd) = LinuxGuest.Require();

        var hv = Hv.Run("run", kernel, "--smp", "2", "--initrd", initrd, "-m", "256M", "--cmdline", LinuxGuest.CommandLine, "--plain", "--timeout", "300");
        TestContext.Out.WriteLine(hv.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero);
            Assert.That(hv.Stdout, Does.Contain("smp: Brought up 1 node, 2 CPUs"), "the AP started through the MADT and INIT-SIPI-SIPI");
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.Match(@"^init: Linux .* on 2 CPU\(s\)$"), "Linux counts both CPUs");
            Assert.That(LinuxGuest.UserlandLines(hv.Stdout), Has.Some.EqualTo("memtest: OK, 2097152 words verified"));
            Assert.That(hv.Stdout, Does.Not.Contain("soft lockup"), "an idle vCPU's clock must not race ahead of the busy one's (it did by hours)");
        });
    }

    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void TwoLinuxVmsOnOneHostShareTheirEqualPagesThroughKsm()
    {
        var (kernel, initrd) = LinuxGuest.Require();

        var hv = Hv.Run("run", kernel, "--vms", "2", "--ksm", "--initrd", initrd, "-m", "256M", "--cmdline", LinuxGuest.CommandLine, "--plain", "--timeout", "300");
        TestContext.Out.WriteLine(hv.Stdout);
        var sharing = System.Text.RegularExpressions.Regex.Match(hv.Stdout, @"pages_sharing\s+([\d,]+)");
        Assert.Multiple(() =>
        {
            Assert.That(hv.ExitCode, Is.Zero, "both VMs' memtest passed");
            Assert.That(hv.Stdout, Does.Contain("[0] memtest: OK").And.Contain("[1] memtest: OK"));
            Assert.That(sharing.Success, Is.True, "the report has KSM's pages_sharing");
            Assert.That(long.Parse(sharing.Groups[1].Value.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(1000),
                "the two kernels' equal pages (text, read-only data, zeroed memory) merged");
        });
    }

    private static (int Status, string Console) RunQemu(string qemu, string kernel, string initrd, int memoryMiB, string commandLine)
    {
        var start = new ProcessStartInfo(qemu,
        [
            "-accel", "tcg", "-machine", "pc", "-cpu", "max", "-m", $"{memoryMiB}M", "-smp", "1",
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel", kernel, "-initrd", initrd, "-append", commandLine,
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return (-1, stdout.Result);
        }

        return (process.ExitCode, stdout.Result);
    }
}
