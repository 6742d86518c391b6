using System.Reflection;
using System.Runtime.CompilerServices;
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
    public void TheFinalizerOfAMachineWhoseConstructorNeverFinishedReleasesNothingAndDoesNotThrow()
    {
        // A constructor that throws leaves the object to the finalizer with no arrays and no descriptors;
        // an exception there would end the test host. Build exactly that state and finalize it by hand.
        var halfBuilt = RuntimeHelpers.GetUninitializedObject(typeof(KvmMachine));
        GC.SuppressFinalize(halfBuilt);
        var finalize = typeof(KvmMachine).GetMethod("Finalize", BindingFlags.Instance | BindingFlags.NonPublic)!;

        Assert.DoesNotThrow(() => finalize.Invoke(halfBuilt, null));
    }

    [Test]
    public void AvailabilityGivesAOneLineReasonOrNone()
    {
        var available = KvmAvailability.IsAvailable(out var reason);

        if (available)
        {
            Assert.That(reason, Is.Empty);
        }
        else
        {
            Assert.That(reason, Is.Not.Empty.And.Not.Contain('\n'));
        }
    }
}
