using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --dirty-policy map|zap</c>: parsing, refusal under kvm (one error line, exit 2), the plumbing through
/// <see cref="VmOptions.DirtyTracking"/> into the VM's <see cref="TdpMmu"/>, and the report row.
/// </summary>
public sealed class DirtyPolicyOptionTests
{
    [TestCase("map", DirtyTrackingPolicy.OnMap)]
    [TestCase("MAP", DirtyTrackingPolicy.OnMap)]
    [TestCase("zap", DirtyTrackingPolicy.OnZap)]
    [TestCase("Zap", DirtyTrackingPolicy.OnZap)]
    public void MapAndZapNameThePolicies(string text, DirtyTrackingPolicy expected)
    {
        Assert.That(DirtyPolicyOption.TryParse(text, out var policy), Is.True);
        Assert.That(policy, Is.EqualTo(expected));
        Assert.That(DirtyPolicyOption.Format(policy), Is.EqualTo(text.ToLowerInvariant()));
    }

    [TestCase("onmap")]
    [TestCase("")]
    [TestCase("1")]
    public void AnythingElseIsNotAPolicy(string text) => Assert.That(DirtyPolicyOption.TryParse(text, out _), Is.False);

    [TestCase("sometimes")]
    [TestCase("OnMap")]
    public void ABadValueIsOneUsageErrorLine(string value)
    {
        var result = Hv.Run("run", "no-such-image.elf", "--dirty-policy", value);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith($"hv: error: --dirty-policy expects map or zap, got '{value}'"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void AMissingValueIsOneUsageErrorLine()
    {
        var result = Hv.Run("run", "no-such-image.elf", "--dirty-policy");

        CliAssert.OneErrorLine(result, "--dirty-policy");
    }

    [TestCase("map")]
    [TestCase("zap")]
    public void EitherPolicyIsRefusedUnderKvmWhetherOrNotKvmIsAvailable(string value)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--accel", "kvm", "--dirty-policy", value);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Is.EqualTo($"hv: error: --dirty-policy {value} needs --accel emulated: under --accel kvm the host kernel's KVM MMU decides when frames are marked dirty"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void TheRefusalIsOnlyForAnAcceleratorWithoutTheEptMmu()
    {
        Assert.That(DirtyPolicyOption.Refusal(null, AcceleratorKind.Kvm), Is.Null, "not given: nothing to refuse");
        Assert.That(DirtyPolicyOption.Refusal(DirtyTrackingPolicy.OnMap, AcceleratorKind.Emulated), Is.Null);
        Assert.That(DirtyPolicyOption.Refusal(DirtyTrackingPolicy.OnZap, AcceleratorKind.Kvm), Does.StartWith("--dirty-policy zap needs --accel emulated"));
    }

    [Test]
    public void VmOptionsRefuseAPolicyUnderKvmAndAnUndefinedOne()
    {
        var kvm = Assert.Throws<VmOptionsException>(() => new VmOptions { Accelerator = AcceleratorKind.Kvm, DirtyTracking = DirtyTrackingPolicy.OnMap }.Validate())!;
        Assert.That(kvm.Rule, Is.EqualTo(VmOptionRule.EmulatedOnly));
        Assert.That(kvm.Message, Does.Contain(nameof(VmOptions.DirtyTracking)));

        var undefined = Assert.Throws<VmOptionsException>(() => new VmOptions { DirtyTracking = (DirtyTrackingPolicy)9 }.Validate())!;
        Assert.That(undefined.Rule, Is.EqualTo(VmOptionRule.DirtyTracking));
        Assert.That(undefined.Message, Does.Contain("9").And.Contain("OnZap or OnMap"));

        Assert.That(() => new VmOptions { Accelerator = AcceleratorKind.Kvm }.Validate(), Throws.Nothing, "no policy given: kvm is fine");
    }

    [TestCase(null, DirtyTrackingPolicy.OnZap)]
    [TestCase(DirtyTrackingPolicy.OnZap, DirtyTrackingPolicy.OnZap)]
    [TestCase(DirtyTrackingPolicy.OnMap, DirtyTrackingPolicy.OnMap)]
    public void TheVmsMmuRunsThePolicyItWasGiven(DirtyTrackingPolicy? given, DirtyTrackingPolicy expected)
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20, DirtyTracking = given }, new GuestConsole());

        Assert.That(vm.Mmu!.Options.DirtyTracking, Is.EqualTo(expected));
    }

    [Test]
    public void TheReportRowNamesThePolicyAndBothCounts()
    {
        var stats = new TdpMmuStats { DirtyMarkedOnMap = 1234, DirtyPropagated = 0 };

        var (value, description) = DirtyPolicyOption.ReportRow(DirtyTrackingPolicy.OnMap, stats);

        Assert.That(value, Is.EqualTo("map"));
        Assert.That(description, Does.StartWith("1,234 marked on map / 0 propagated on zap"));
        Assert.That(DirtyPolicyOption.ReportRow(DirtyTrackingPolicy.OnZap, stats with { DirtyMarkedOnMap = 0, DirtyPropagated = 5 }).Description, Does.StartWith("0 marked on map / 5 propagated on zap"));
    }

    [TestCase("map", @"^dirty policy\s+map\s+[1-9][0-9,]* marked on map / 0 propagated on zap")]
    [TestCase("zap", @"^dirty policy\s+zap\s+0 marked on map / [1-9][0-9,]* propagated on zap")]
    [Category(TestCategories.Guest)]
    public void HvRunReportsThePolicyAndWhatEachSideMarked(string policy, string row)
    {
        // Host forks zap the guest's dirty sptes, so the zap side has something to propagate; 8 MiB keeps the guest running
        // for many fork periods even when a loaded machine starts the fork thread late.
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--cmdline", "mib=8", "--host-fork-every", "1", "--dirty-policy", policy);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memtest: OK"));
            var line = result.StdoutLines.FirstOrDefault(r => r.StartsWith("dirty policy ", StringComparison.Ordinal)) ?? string.Empty;
            Assert.That(line, Does.Match(row));
        });
    }
}
