using Hypervisor.Vmm.Accel.Kvm;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>The ioctl numbers computed with _IO/_IOR/_IOW equal the values in the kernel headers.</summary>
public sealed class KvmIoctlTests
{
    [Test]
    public void SystemAndVmIoctlsMatchKernelValues()
    {
        Assert.Multiple(() =>
        {
            Assert.That(KvmIoctl.GetApiVersion, Is.EqualTo((nuint)0xAE00));
            Assert.That(KvmIoctl.CreateVm, Is.EqualTo((nuint)0xAE01));
            Assert.That(KvmIoctl.CheckExtension, Is.EqualTo((nuint)0xAE03));
            Assert.That(KvmIoctl.GetVcpuMmapSize, Is.EqualTo((nuint)0xAE04));
            Assert.That(KvmIoctl.GetSupportedCpuid, Is.EqualTo((nuint)0xC008AE05));
            Assert.That(KvmIoctl.CreateVcpu, Is.EqualTo((nuint)0xAE41));
            Assert.That(KvmIoctl.SetUserMemoryRegion, Is.EqualTo((nuint)0x4020AE46));
            Assert.That(KvmIoctl.SetTssAddr, Is.EqualTo((nuint)0xAE47));
        });
    }

    [Test]
    public void VcpuIoctlsMatchKernelValues()
    {
        Assert.Multiple(() =>
        {
            Assert.That(KvmIoctl.Run, Is.EqualTo((nuint)0xAE80));
            Assert.That(KvmIoctl.GetRegs, Is.EqualTo((nuint)0x8090AE81));
            Assert.That(KvmIoctl.SetRegs, Is.EqualTo((nuint)0x4090AE82));
            Assert.That(KvmIoctl.GetSregs, Is.EqualTo((nuint)0x8138AE83));
            Assert.That(KvmIoctl.SetSregs, Is.EqualTo((nuint)0x4138AE84));
            Assert.That(KvmIoctl.SetCpuid2, Is.EqualTo((nuint)0x4008AE90));
        });
    }

    [Test]
    public void IocRejectsSizesOutsideFourteenBits()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KvmIoctl.Ioc(KvmIoctl.DirectionRead, KvmIoctl.Kvmio, 0x81, 1 << 14));
    }
}
