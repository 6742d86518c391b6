using System.Globalization;
using System.Text.RegularExpressions;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --ksm</c>: guest RAM mergeable and the host's ksmd running under several VMs of one image; the report's
/// KSM rows show merging and the guests still pass; bad KSM options are one error line and exit 2.
/// </summary>
public sealed class RunKsmTests
{
    [TestCase("--ksm-pages-to-scan 100", "--ksm-pages-to-scan needs --ksm")]
    [TestCase("--ksm-sleep 5", "--ksm-sleep needs --ksm")]
    [TestCase("--ksm --ksm-pages-to-scan 0", "--ksm-pages-to-scan")]
    [TestCase("--ksm --ksm-sleep -1", "--ksm-sleep")]
    [TestCase("--ksm --ksm-sleep 70000", "--ksm-sleep")]
    [TestCase("--vms 0", "--vms")]
    [TestCase("--vms 3000", "--vms")]
    [TestCase("--vms 1000 -m 1G --ksm", "do not fit one host")]
    public void BadKsmOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["run", GuestImages.ImagePath("hello"), "--plain", .. options.Split(' ')]);

        Assert.Multiple(() =>
        {
            CliAssert.OneErrorLine(result, message);
            Assert.That(result.Stdout, Is.Empty, "no guest ran");
        });
    }

    [Test]
    public void KsmOnKvmNeedsTheRealKernelsKsmToBeWritable()
    {
        var saved = VmOptions.RealKsmRunPath;
        VmOptions.RealKsmRunPath = Path.Combine(Path.GetTempPath(), "hv-no-such-ksm-" + Guid.NewGuid().ToString("N"), "run");
        try
        {
            var options = new VmOptions { Accelerator = AcceleratorKind.Kvm, Ksm = true };
            var error = Assert.Throws<VmOptionsException>(options.Validate)!;
            Assert.Multiple(() =>
            {
                Assert.That(error.Rule, Is.EqualTo(VmOptionRule.Ksm));
                Assert.That(error.Message, Does.Contain(VmOptions.RealKsmRunPath).And.Contain("not writable"));
            });
        }
        finally
        {
            VmOptions.RealKsmRunPath = saved;
        }
    }

    [Test]
    public void LegacyChangePteNeedsTheEmulatedAccelerator()
    {
        var error = Assert.Throws<VmOptionsException>(new VmOptions { Accelerator = AcceleratorKind.Kvm, LegacyChangePte = true }.Validate)!;

        Assert.That(error.Rule, Is.EqualTo(VmOptionRule.EmulatedOnly));
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void FourCopiesOfTheKsmGuestMergeAndAllPass()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("ksm"), "--plain", "--vms", "4", "-m", "32M", "--ksm", "--ksm-sleep", "1", "--legacy-change-pte", "--cmdline", "pages=1024 passes=8");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines.Count(l => Regex.IsMatch(l, @"^\[\d\] ksm: OK")), Is.EqualTo(4), result.Stdout);
            var merging = Cells(result, "ksm_merging_pages");
            Assert.That(merging, Has.Count.EqualTo(5), "a column per VM and the host");
            Assert.That(merging.Sum(), Is.Positive, "the guests' equal pages merged while they ran");
            Assert.That(Cells(result, "pages_sharing")[^1], Is.Positive);
            Assert.That(Row(result, "general_profit"), Does.Match(@"\d[\d,]*\.\d MiB\s*$"), "the host's general_profit in MiB");
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("change_pte hits", StringComparison.Ordinal)), Is.True, "legacy change_pte counted");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void OneVmUnderKsmReportsItsMergingPages()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("ksm"), "--plain", "-m", "32M", "--ksm", "--ksm-sleep", "1", "--cmdline", "pages=2048 passes=24");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("ksm: OK"));
            Assert.That(Value(result, "ksm_merging_pages"), Is.Positive, "equal pages of one guest merge too");
            Assert.That(Value(result, "pages_sharing"), Is.Positive);
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("cow_ksm ", StringComparison.Ordinal)), Is.True);
        });
    }

    private static string Row(CliResult result, string figure) =>
        result.StdoutLines.FirstOrDefault(r => r.StartsWith(figure + " ", StringComparison.Ordinal)) ?? string.Empty;

    private static List<long> Cells(CliResult result, string figure)
    {
        var row = result.StdoutLines.FirstOrDefault(r => r.StartsWith(figure + " ", StringComparison.Ordinal)) ?? string.Empty;
        return [.. Regex.Matches(row[Math.Min(row.Length, figure.Length)..], @"(?<![\d.])\d[\d,]*(?![\d.])").Select(m => long.Parse(m.Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture))];
    }

    private static long Value(CliResult result, string figure)
    {
        var row = result.StdoutLines.FirstOrDefault(r => r.StartsWith(figure + " ", StringComparison.Ordinal)) ?? string.Empty;
        var match = Regex.Match(row, "^" + Regex.Escape(figure) + @"\s+([0-9,]+)\s");
        return match.Success ? long.Parse(match.Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture) : -1;
    }
}
