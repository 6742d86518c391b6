using Hypervisor.Vmm.Accel.Kvm;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>Argument checks that run before /dev/kvm is touched, so they run everywhere.</summary>
public sealed class KvmArgumentTests
{
    [TestCase(0UL)]
    [TestCase(4097UL)]
    [TestCase(KvmMachine.MaxMemoryBytes + 4096)]
    public void BadMemorySizesAreRejected(ulong bytes)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new KvmMachine(bytes).Dispose());

        Assert.That(e!.ParamName, Is.EqualTo("memoryBytes"));
    }

    [TestCase(0)]
    [TestCase(KvmMachine.MaxCpuCount + 1)]
    public void BadCpuCountsAreRejected(int cpus)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new KvmMachine(1 << 20, cpus).Dispose());

        Assert.That(e!.ParamName, Is.EqualTo("cpuCount"));
    }

    [Test]
    public void RejectedMachinesLeaveNothingForTheFinalizer()
    {
        for (var i = 0; i < 8; i++)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new KvmMachine(0).Dispose());
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();

        Assert.Pass("no finalizer ran on a half-built machine");
    }

    [Test]
    public void AvailabilityGivesAOneLineReasonOrNone()
    {
        var available = KvmAvailability.IsAvailable(out var reason);

        Assert.That(available ? reason : reason.Contains('\n', StringComparison.Ordinal) ? "multi-line" : "", Is.Empty);
        if (!available)
        {
            Assert.That(reason, Is.Not.Empty);
        }
    }
}
