using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Vmm.Accel.Kvm;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>The P/Invoke structures match the kernel's sizes and field offsets (x86-64 uapi).</summary>
public sealed class KvmLayoutTests
{
    [Test]
    public void KvmRegsIs144Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmRegs>(), Is.EqualTo(144));
            Assert.That(Marshal.SizeOf<KvmRegs>(), Is.EqualTo(144));
            Assert.That(Marshal.OffsetOf<KvmRegs>(nameof(KvmRegs.Rip)), Is.EqualTo((nint)128));
            Assert.That(Marshal.OffsetOf<KvmRegs>(nameof(KvmRegs.Rflags)), Is.EqualTo((nint)136));
        });
    }

    [Test]
    public void KvmSegmentIs24Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmSegment>(), Is.EqualTo(24));
            Assert.That(Marshal.SizeOf<KvmSegment>(), Is.EqualTo(24));
            Assert.That(Marshal.OffsetOf<KvmSegment>(nameof(KvmSegment.Selector)), Is.EqualTo((nint)12));
            Assert.That(Marshal.OffsetOf<KvmSegment>(nameof(KvmSegment.Type)), Is.EqualTo((nint)14));
            Assert.That(Marshal.OffsetOf<KvmSegment>(nameof(KvmSegment.Unusable)), Is.EqualTo((nint)22));
        });
    }

    [Test]
    public void KvmDtableIs16Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmDtable>(), Is.EqualTo(16));
            Assert.That(Marshal.SizeOf<KvmDtable>(), Is.EqualTo(16));
        });
    }

    [Test]
    public void KvmSregsIs312Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmSregs>(), Is.EqualTo(312));
            Assert.That(Marshal.SizeOf<KvmSregs>(), Is.EqualTo(312));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Ldt)), Is.EqualTo((nint)168));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Gdt)), Is.EqualTo((nint)192));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Cr0)), Is.EqualTo((nint)224));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Efer)), Is.EqualTo((nint)264));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.ApicBase)), Is.EqualTo((nint)272));
            Assert.That(Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.InterruptBitmap)), Is.EqualTo((nint)280));
        });
    }

    [Test]
    public void KvmRunHeaderIs32BytesWithExitReasonAt8()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmRunHeader>(), Is.EqualTo(32));
            Assert.That(Marshal.SizeOf<KvmRunHeader>(), Is.EqualTo(32));
            Assert.That(Marshal.OffsetOf<KvmRunHeader>(nameof(KvmRunHeader.ImmediateExit)), Is.EqualTo((nint)1));
            Assert.That(Marshal.OffsetOf<KvmRunHeader>(nameof(KvmRunHeader.ExitReason)), Is.EqualTo((nint)8));
            Assert.That(Marshal.OffsetOf<KvmRunHeader>(nameof(KvmRunHeader.Cr8)), Is.EqualTo((nint)16));
            Assert.That(KvmRunHeader.ExitUnionOffset, Is.EqualTo(32));
        });
    }

    [Test]
    public void KvmRunExitMembersHaveKernelLayout()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmRunIo>(), Is.EqualTo(16));
            Assert.That(Marshal.OffsetOf<KvmRunIo>(nameof(KvmRunIo.Port)), Is.EqualTo((nint)2));
            Assert.That(Marshal.OffsetOf<KvmRunIo>(nameof(KvmRunIo.Count)), Is.EqualTo((nint)4));
            Assert.That(Marshal.OffsetOf<KvmRunIo>(nameof(KvmRunIo.DataOffset)), Is.EqualTo((nint)8));
            Assert.That(Unsafe.SizeOf<KvmRunMmio>(), Is.EqualTo(24));
            Assert.That(Marshal.OffsetOf<KvmRunMmio>(nameof(KvmRunMmio.Len)), Is.EqualTo((nint)16));
            Assert.That(Marshal.OffsetOf<KvmRunMmio>(nameof(KvmRunMmio.IsWrite)), Is.EqualTo((nint)20));
            Assert.That(Unsafe.SizeOf<KvmRunFailEntry>(), Is.EqualTo(16));
            Assert.That(Unsafe.SizeOf<KvmRunInternal>(), Is.EqualTo(136));
            Assert.That(Marshal.OffsetOf<KvmRunInternal>(nameof(KvmRunInternal.Data)), Is.EqualTo((nint)8));
        });
    }

    [Test]
    public void KvmUserspaceMemoryRegionIs32Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmUserspaceMemoryRegion>(), Is.EqualTo(32));
            Assert.That(Marshal.SizeOf<KvmUserspaceMemoryRegion>(), Is.EqualTo(32));
            Assert.That(Marshal.OffsetOf<KvmUserspaceMemoryRegion>(nameof(KvmUserspaceMemoryRegion.GuestPhysAddr)), Is.EqualTo((nint)8));
            Assert.That(Marshal.OffsetOf<KvmUserspaceMemoryRegion>(nameof(KvmUserspaceMemoryRegion.UserspaceAddr)), Is.EqualTo((nint)24));
        });
    }

    [Test]
    public void KvmCpuidStructuresHaveKernelSizes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KvmCpuidEntry2>(), Is.EqualTo(40));
            Assert.That(Marshal.SizeOf<KvmCpuidEntry2>(), Is.EqualTo(40));
            Assert.That(Marshal.OffsetOf<KvmCpuidEntry2>(nameof(KvmCpuidEntry2.Eax)), Is.EqualTo((nint)12));
            Assert.That(Unsafe.SizeOf<KvmCpuid2Header>(), Is.EqualTo(8));
        });
    }

    [Test]
    public void GlibcSigactionIs152Bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Unsafe.SizeOf<KernelSigaction>(), Is.EqualTo(152));
            Assert.That(Marshal.OffsetOf<KernelSigaction>(nameof(KernelSigaction.Flags)), Is.EqualTo((nint)136));
            Assert.That(Marshal.OffsetOf<KernelSigaction>(nameof(KernelSigaction.Restorer)), Is.EqualTo((nint)144));
        });
    }
}
