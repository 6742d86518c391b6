using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// memtest under a host memory limit a quarter of guest RAM: guest pages are swapped out and back in under the running
/// guest on both devices, and the guest computes the same checksum as without the limit; a swap too small for the guest
/// stops the VM as host out of memory, and injected swap read faults stop it as a memory failure — never wrong data.
/// </summary>
public sealed class VmSwapGuestTests
{
    private const ulong GuestRam = 32UL << 20;
    private const ulong HostLimit = 8UL << 20;
    private const string MemtestArgs = "mib=16";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    // The checksum line of the same memtest without a host limit (computed once: the reference).
    private static readonly Lazy<string> ReferenceChecksum = new(() => ChecksumLine(Boot(new VmOptions { MemoryBytes = GuestRam, CommandLine = MemtestArgs, Timeout = Limit }).Output));

    [TestCase(SwapDeviceKind.File)]
    [TestCase(SwapDeviceKind.Zram)]
    [Category(TestCategories.Guest)]
    public void MemtestUnderAHostLimitSwapsAndComputesTheSameChecksum(SwapDeviceKind kind)
    {
        var options = new VmOptions
        {
            MemoryBytes = GuestRam,
            CommandLine = MemtestArgs,
            Timeout = Limit,
            HostMemoryBytes = HostLimit,
            Swap = VmOptions.DefaultSwap(GuestRam) with { Kind = kind },
        };

        var (result, output, audit) = Boot(options);

        Assert.Multiple(() =>
        {
            Assert.That(result.GuestExitCode, Is.Zero, result.Detail + "\n" + output);
            Assert.That(output, Does.Contain("memtest: OK"));
            Assert.That(ChecksumLine(output), Is.EqualTo(ReferenceChecksum.Value));
            Assert.That(result.HostMemory, Is.Not.Null);
            Assert.That(result.HostMemory!.Pswpout, Is.Positive, "16 MiB written under an 8 MiB limit must swap out");
            Assert.That(result.HostMemory.Pswpin + result.HostMemory.Reclaim.SwapCacheHits, Is.Positive, "verifying must fault pages back");
            Assert.That(result.HostMemory.Pswpin, Is.Positive);
            Assert.That(result.HostMemory.Cgroup.PeakPages, Is.LessThanOrEqualTo((long)(HostLimit / 4096)));
            Assert.That(result.HostMemory.Reclaim.MemoryFailures, Is.Zero);
            Assert.That(result.HostMemory.SwapDevice, Does.StartWith(kind == SwapDeviceKind.Zram ? "zram" : "file:"));
            Assert.That(result.HostMemory.ZramCompressionRatio.HasValue, Is.EqualTo(kind == SwapDeviceKind.Zram));
            Assert.That(audit, Is.Empty);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheDefaultTemporarySwapFileExistsWhileTheVmLivesAndIsRemovedWithIt()
    {
        var console = new GuestConsole();
        string path;
        using (var vm = new Vm(new VmOptions { MemoryBytes = GuestRam, CommandLine = "mib=8", Timeout = Limit, HostMemoryBytes = HostLimit }, console))
        {
            var name = vm.HostMemory()!.SwapDevice;
            Assert.That(name, Does.StartWith("file:"));
            path = name["file:".Length..];
            Assert.That(File.Exists(path), Is.True, path);
            Assert.That(Path.GetDirectoryName(path), Is.EqualTo(Path.GetDirectoryName(Path.Combine(Path.GetTempPath(), "x"))));
            vm.Boot(ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest"))));
            var result = vm.Run();
            Assert.That(result.GuestExitCode, Is.Zero, result.Detail);
        }

        Assert.That(File.Exists(path), Is.False, $"{path} is left behind");
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ASwapTooSmallForTheGuestStopsTheVmAsHostOutOfMemoryWithinSeconds()
    {
        var options = new VmOptions
        {
            MemoryBytes = GuestRam,
            CommandLine = MemtestArgs,
            Timeout = Limit,
            HostMemoryBytes = 4UL << 20,
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 4UL << 20 },
        };

        var (result, _, audit) = Boot(options);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.HostOutOfMemory), result.Detail);
            Assert.That(result.ExitCode, Is.EqualTo(VmExitStatus.Broken));
            Assert.That(result.Detail, Does.StartWith("host memory exhausted: cgroup limit 4 MiB, swap full"));
            Assert.That(result.Detail, Does.Contain("gpa 0x").And.Contain("memslot 0"));
            Assert.That(result.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "an OOM is final: no endless retry");
            Assert.That(result.HostMemory!.Reclaim.OomFailures, Is.Positive);
            Assert.That(audit, Is.Empty);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void InjectedSwapReadFaultsStopTheVmAsAMemoryFailureNamingGpaSlotAndCause()
    {
        var options = new VmOptions
        {
            MemoryBytes = GuestRam,
            CommandLine = MemtestArgs,
            Timeout = Limit,
            HostMemoryBytes = HostLimit,
            Swap = new SwapOptions
            {
                Kind = SwapDeviceKind.Zram,
                SizeBytes = VmOptions.DefaultSwapBytes(GuestRam),
                FaultInjection = new SwapFaultInjection { ReadErrorRate = 0.05, CorruptWriteRate = 0.05 },
            },
        };

        var (result, output, _) = Boot(options);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.MemoryFailure), result.Detail);
            Assert.That(result.ExitCode, Is.EqualTo(VmExitStatus.Broken));
            Assert.That(result.Detail, Does.StartWith("memory failure on swap device inject(zram)"));
            Assert.That(result.Detail, Does.Match("gpa 0x[0-9a-f]+ in memslot 0: .*swap slot [0-9]+: (checksum mismatch|read I/O error)"));
            Assert.That(output, Does.Not.Contain("memtest: mismatch").And.Not.Contain("memtest: OK"), "the guest never saw wrong data, nor finished");
            Assert.That(result.HostMemory!.Reclaim.MemoryFailures, Is.Positive);
        });
    }

    private static string ChecksumLine(string output) =>
        output.Split('\n').FirstOrDefault(l => l.StartsWith("memtest: checksum", StringComparison.Ordinal)) ?? "(no checksum line)\n" + output;

    private static (VmRunResult Result, string Output, IReadOnlyList<string> Audit) Boot(VmOptions options)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest")));
        var console = new GuestConsole();
        using var vm = new Vm(options, console);
        vm.Boot(image);
        var result = vm.Run();
        return (result, console.Transcript(), MmuAuditor.Check(vm.Mmu!));
    }
}
