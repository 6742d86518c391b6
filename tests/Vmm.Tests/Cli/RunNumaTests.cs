using System.Globalization;
using System.Text.RegularExpressions;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --numa N --vcpu-node K</c>: one <c>hv: error:</c> line and exit 2 for each bad value; a host whose every
/// node holds all guest RAM; the report's rows of guest pages per node and the migration counters.
/// </summary>
public sealed class RunNumaTests
{
    [TestCase("--numa 0", "--numa expects a whole number from 1 to 8, got '0'")]
    [TestCase("--numa 9", "--numa expects a whole number from 1 to 8, got '9'")]
    [TestCase("--numa two", "--numa expects a whole number from 1 to 8, got 'two'")]
    [TestCase("--vcpu-node -1", "--vcpu-node")]
    [TestCase("--vcpu-node 8", "--vcpu-node expects a whole number from 0 to 7, got '8'")]
    [TestCase("--vcpu-node 2", "--vcpu-node 2 is not a node of the host: with --numa 2 the nodes are 0 to 1")]
    [TestCase("--numa 3 --vcpu-node 3", "--vcpu-node 3 is not a node of the host: with --numa 3 the nodes are 0 to 2")]
    [TestCase("--numa 1 --vcpu-node 1", "--vcpu-node 1 is not a node of the host: with --numa 1 the nodes are 0 to 0")]
    public void BadNumaOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["run", GuestImages.ImagePath("hello"), "--plain", .. options.Split(' ')]);

        Assert.Multiple(() =>
        {
            CliAssert.OneErrorLine(result, message);
            Assert.That(result.Stdout, Is.Empty, "the guest did not run");
        });
    }

    [Test]
    public void NumaOptionsAreRefusedOnKvmAndOutOfRangeInTheOptionsThemselves()
    {
        Assert.Multiple(() =>
        {
            var kvm = Assert.Throws<VmOptionsException>(new VmOptions { Accelerator = AcceleratorKind.Kvm, NumaNodes = 2 }.Validate)!;
            Assert.That(kvm.Rule, Is.EqualTo(VmOptionRule.Numa));
            Assert.That(kvm.Message, Does.Contain("needs the emulated accelerator"));
            var nodes = Assert.Throws<VmOptionsException>(new VmOptions { NumaNodes = 9 }.Validate)!;
            Assert.That(nodes.Message, Does.Contain("1 to 8 NUMA nodes, got 9"));
            var home = Assert.Throws<VmOptionsException>(new VmOptions { NumaNodes = 4, VcpuNode = 4 }.Validate)!;
            Assert.That(home.Message, Does.Contain("one of the host's 4 NUMA nodes (0 to 3), got 4"));
            Assert.That(() => new VmOptions { VcpuNode = 1 }.Validate(), Throws.Nothing, "node 1 of the default two-node host");
        });
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(8)]
    public void EveryNodeOfANumaHostHoldsAllGuestRam(int nodes)
    {
        var options = new VmOptions { MemoryBytes = 64UL << 20, NumaNodes = nodes };
        using var machine = new HostMachine(options, vmCount: 2);

        Assert.Multiple(() =>
        {
            Assert.That(machine.Host.Memory.NodeCount, Is.EqualTo(nodes));
            for (var n = 0; n < nodes; n++)
            {
                var node = machine.Host.Memory.GetNode(n);
                Assert.That((ulong)node.FrameCount * 4096, Is.GreaterThanOrEqualTo(2 * options.MemoryBytes * 9 / 8), $"node {n} holds both VMs' RAM and their tables");
            }
        });
    }

    [Test]
    public void WithoutNumaTheHostIsTheTwoNodeHostOfBefore()
    {
        var options = new VmOptions { MemoryBytes = 64UL << 20 };
        using var machine = new HostMachine(options);

        Assert.Multiple(() =>
        {
            Assert.That(machine.Host.Memory.NodeCount, Is.EqualTo(VmOptions.DefaultNumaNodes));
            Assert.That(machine.Host.Memory.TotalBytes, Is.EqualTo(HostMachine.HostBytesFor(options.MemoryBytes, 1)));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void MemtestOnATwoNodeHostReportsItsPagesPerNode()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "16M", "--numa", "2", "--cmdline", "mib=4");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memtest: OK"));
            var row = result.StdoutLines.Single(l => l.StartsWith("guest pages per node", StringComparison.Ordinal));
            var match = Regex.Match(row, @"N0=([\d,]+) N1=([\d,]+)");
            Assert.That(match.Success, Is.True, row);
            var n0 = long.Parse(match.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            var n1 = long.Parse(match.Groups[2].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            Assert.That(n0, Is.GreaterThanOrEqualTo(4 * 256), "memtest's 4 MiB were touched first on node 0, the vCPU's home");
            Assert.That(n1, Is.Zero);
            Assert.That(result.StdoutLines.Any(l => Regex.IsMatch(l, @"^pgmigrate_success\s+0\s")), Is.True, result.Stdout);
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("migration-entry waits", StringComparison.Ordinal)), Is.True);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheVcpusHomeNodeIsWhereTheGuestFaultsItsMemoryIn()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "16M", "--numa", "3", "--vcpu-node", "2", "--cmdline", "mib=4");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            var row = result.StdoutLines.Single(l => l.StartsWith("guest pages per node", StringComparison.Ordinal));
            var match = Regex.Match(row, @"N0=([\d,]+) N1=([\d,]+) N2=([\d,]+)");
            Assert.That(match.Success, Is.True, row);
            var perNode = Enumerable.Range(1, 3).Select(i => long.Parse(match.Groups[i].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture)).ToArray();
            Assert.That(perNode[2], Is.GreaterThanOrEqualTo(4 * 256), "memtest's region was first touched by the vCPU, on its home node 2");
            Assert.That(perNode[1], Is.Zero);
            Assert.That(perNode[0], Is.LessThan(perNode[2]), "only what the loader wrote from the main thread (the image, boot data) is on node 0");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TwoVmsOnATwoNodeHostEachFaultInOnTheirOwnNode()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "--vms", "2", "-m", "16M", "--numa", "2", "--cmdline", "mib=2");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            var row = result.StdoutLines.Single(l => l.StartsWith("guest pages per node", StringComparison.Ordinal));
            var cells = Regex.Matches(row, @"N0=([\d,]+) N1=([\d,]+)").Select(m => (N0: Parse(m.Groups[1].Value), N1: Parse(m.Groups[2].Value))).ToList();
            Assert.That(cells, Has.Count.EqualTo(3), "a cell per VM and the host's");
            Assert.That(cells[0].N0, Is.GreaterThanOrEqualTo(2 * 256));
            Assert.That(cells[0].N1, Is.Zero, "VM 0's process prefers node 0");
            Assert.That(cells[1].N1, Is.GreaterThanOrEqualTo(2 * 256));
            Assert.That(cells[1].N0, Is.Zero, "VM 1's process prefers node 1");
            Assert.That(cells[2], Is.EqualTo((cells[0].N0 + cells[1].N0, cells[0].N1 + cells[1].N1)), "the host's cell sums them");
        });

        static long Parse(string text) => long.Parse(text, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void WithoutNumaTheReportHasNoNodeRows()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain");

        Assert.That(result.Stdout, Does.Not.Contain("guest pages per node"));
    }
}
