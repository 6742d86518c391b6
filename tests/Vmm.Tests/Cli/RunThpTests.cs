using System.Globalization;
using System.Text.RegularExpressions;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --thp always|madvise|never</c>: one <c>hv: error:</c> line and exit 2 for a bad value or on kvm; guest RAM
/// 2 MiB-aligned under THP; a sample guest under <c>--thp always</c> (and madvise) reports 2 MiB sptes.
/// </summary>
public sealed class RunThpTests
{
    [TestCase("--thp sometimes", "--thp expects always, madvise or never, got 'sometimes'")]
    [TestCase("--thp", "--thp")]
    [TestCase("--thp always --accel kvm", "--thp always needs --accel emulated")]
    [TestCase("--thp madvise --accel kvm", "--thp madvise needs --accel emulated")]
    public void BadThpOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["run", GuestImages.ImagePath("hello"), "--plain", .. options.Split(' ')]);

        Assert.Multiple(() =>
        {
            CliAssert.OneErrorLine(result, message);
            Assert.That(result.Stdout, Is.Empty, "the guest did not run");
        });
    }

    [Test]
    public void ThpIsRefusedOnKvmAndAnUndefinedModeInTheOptionsThemselves()
    {
        Assert.Multiple(() =>
        {
            var kvm = Assert.Throws<VmOptionsException>(new VmOptions { Accelerator = AcceleratorKind.Kvm, TransparentHugePages = ThpMode.Always }.Validate)!;
            Assert.That(kvm.Rule, Is.EqualTo(VmOptionRule.Thp));
            Assert.That(kvm.Message, Does.Contain("needs the emulated accelerator").And.Contain("transparent_hugepage"));
            var undefined = Assert.Throws<VmOptionsException>(new VmOptions { TransparentHugePages = (ThpMode)7 }.Validate)!;
            Assert.That(undefined.Rule, Is.EqualTo(VmOptionRule.Thp));
            Assert.That(() => new VmOptions { Accelerator = AcceleratorKind.Kvm }.Validate(), Throws.Nothing, "never is the default on kvm too");
        });
    }

    [TestCase(ThpMode.Always)]
    [TestCase(ThpMode.Madvise)]
    public void GuestRamIsTwoMibAlignedAndTheHostTakesTheMode(ThpMode mode)
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 6UL << 20, TransparentHugePages = mode }, new Hypervisor.Vmm.Devices.GuestConsole());

        Assert.Multiple(() =>
        {
            Assert.That(vm.Host!.Options.TransparentHugePages, Is.EqualTo(mode));
            Assert.That(vm.GuestMemory!.Base.Value % (2UL << 20), Is.Zero, "gpa and hva agree modulo 2 MiB");
            vm.GuestMemory.Write(0x20_0000, [1, 2, 3]);
            Assert.That(vm.Process!.PageTable.IsHugeMapped(vm.GuestMemory.Base + 0x20_0000), Is.True, "a write fault in guest RAM maps a 2 MiB page");
            Assert.That(vm.Process.ThpStats.ThpFaultAlloc, Is.EqualTo(1));
        });
    }

    [Test]
    public void WithoutThpTheHostMapsGuestRamAtFourKib()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 6UL << 20 }, new Hypervisor.Vmm.Devices.GuestConsole());
        vm.GuestMemory!.Write(0x20_0000, [1, 2, 3]);

        Assert.Multiple(() =>
        {
            Assert.That(vm.Host!.Options.TransparentHugePages, Is.EqualTo(ThpMode.Never));
            Assert.That(vm.Process!.PageTable.IsHugeMapped(vm.GuestMemory.Base + 0x20_0000), Is.False);
            Assert.That(vm.Process.ThpStats.ThpFaultAlloc, Is.Zero);
        });
    }

    [TestCase("always")]
    [TestCase("madvise")]
    [Category(TestCategories.Guest)]
    public void MemtestUnderThpReportsTwoMibSptes(string mode)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "16M", "--thp", mode, "--cmdline", "mib=4");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memtest: OK"));
            Assert.That(Row(result, "thp mode"), Does.Contain(mode));
            Assert.That(Value(result, "pages_2m"), Is.GreaterThanOrEqualTo(2), "memtest's 4 MiB are at least two 2 MiB EPT leaves");
            Assert.That(Value(result, "thp_fault_alloc"), Is.GreaterThanOrEqualTo(2));
            Assert.That(Value(result, "thp_split_pmd"), Is.Zero);
            Assert.That(Row(result, "AnonHugePages"), Does.Match(@"AnonHugePages\s+[\d,]+ kB"));
            Assert.That(Value(result, "EPT violations"), Is.LessThan(100), "one violation per 2 MiB, not per 4 KiB");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void MemtestWithoutThpHasNoThpRowsAndFaultsAtFourKib()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "16M", "--cmdline", "mib=4");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("pages_2m", StringComparison.Ordinal)), Is.False);
            Assert.That(Value(result, "EPT violations"), Is.GreaterThanOrEqualTo(1024), "4 MiB at 4 KiB");
        });
    }

    private static string Row(CliResult result, string figure) =>
        result.StdoutLines.Single(l => l.StartsWith(figure + " ", StringComparison.Ordinal));

    private static long Value(CliResult result, string figure)
    {
        var match = Regex.Match(Row(result, figure), "^" + Regex.Escape(figure) + @"\s+([\d,]+)");
        Assert.That(match.Success, Is.True, Row(result, figure));
        return long.Parse(match.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
    }
}
