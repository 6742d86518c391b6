using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_sregs</c> (x86): segments, descriptor tables, control registers, 312 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 312)]
// unsafe: the interrupt bitmap is a fixed buffer, as in the kernel structure.
internal unsafe struct KvmSregs
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 312;

    /// <summary>64-bit words in the pending-interrupt bitmap (256 vectors).</summary>
    public const int InterruptBitmapWords = 4;

    public KvmSegment Cs;
    public KvmSegment Ds;
    public KvmSegment Es;
    public KvmSegment Fs;
    public KvmSegment Gs;
    public KvmSegment Ss;
    public KvmSegment Tr;
    public KvmSegment Ldt;
    public KvmDtable Gdt;
    public KvmDtable Idt;
    public ulong Cr0;
    public ulong Cr2;
    public ulong Cr3;
    public ulong Cr4;
    public ulong Cr8;
    public ulong Efer;
    public ulong ApicBase;
    public fixed ulong InterruptBitmap[InterruptBitmapWords];
}
