using Hypervisor.Vmm.Accel.Kvm;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>
/// The details of the exits that break the VM, from synthetic kvm_run payloads (no /dev/kvm needed):
/// KVM_EXIT_FAIL_ENTRY (which this machine's paravirtual KVM never produces) and KVM_EXIT_INTERNAL_ERROR. The status,
/// exit code and title of each stop are the accelerator-independent <c>VmExitStatusTests</c> and <c>RunReportTests</c>.
/// </summary>
public sealed class KvmExitDetailTests
{
    [TestCase(0x8000_0021UL, 0u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x80000021 on cpu 0")]
    [TestCase(ulong.MaxValue, 3u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0xffffffffffffffff on cpu 3")]
    [TestCase(0UL, 17u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x0 on cpu 17")]
    public void FailEntryShowsTheHardwareReasonInHexAndTheCpu(ulong hardwareReason, uint cpu, string detail) =>
        Assert.That(KvmExitDetail.FailEntry(hardwareReason, cpu), Is.EqualTo(detail));

    [TestCase(1u, "instruction emulation failed")]
    [TestCase(2u, "simultaneous exceptions")]
    [TestCase(3u, "unexpected exit while delivering an event")]
    [TestCase(4u, "unexpected exit reason")]
    [TestCase(0u, "unknown suberror")]
    [TestCase(99u, "unknown suberror")]
    public void InternalErrorNamesTheSuberror(uint suberror, string name) =>
        Assert.That(KvmExitDetail.InternalError(suberror, 0, new ulong[KvmRunInternal.MaxData]), Is.EqualTo($"KVM_EXIT_INTERNAL_ERROR: suberror {suberror} ({name})"));

    [Test]
    public void InternalErrorShowsTheFirstNdataWordsInHex()
    {
        var data = new ulong[KvmRunInternal.MaxData];
        data[0] = 0x1;
        data[1] = 0xF4FE_E000_3005_D90F;
        data[2] = 0;
        data[3] = 0x1000;
        data[4] = 0xDEAD;

        var detail = KvmExitDetail.InternalError(1, 4, data);

        Assert.That(detail, Is.EqualTo("KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed), data 0x1 0xf4fee0003005d90f 0x0 0x1000"));
    }

    [Test]
    public void InternalErrorShowsNoMoreWordsThanTheBufferHolds()
    {
        var data = Enumerable.Range(1, KvmRunInternal.MaxData).Select(i => (ulong)i).ToArray();

        var full = KvmExitDetail.InternalError(3, 200, data);
        var shortBuffer = KvmExitDetail.InternalError(3, 200, data.AsSpan(0, 2));

        Assert.Multiple(() =>
        {
            Assert.That(full, Does.EndWith(", data " + string.Join(' ', data.Select(d => $"0x{d:x}"))));
            Assert.That(full.Split(' ').Count(w => w.StartsWith("0x", StringComparison.Ordinal)), Is.EqualTo(KvmRunInternal.MaxData));
            Assert.That(shortBuffer, Is.EqualTo("KVM_EXIT_INTERNAL_ERROR: suberror 3 (unexpected exit while delivering an event), data 0x1 0x2"));
        });
    }
}
