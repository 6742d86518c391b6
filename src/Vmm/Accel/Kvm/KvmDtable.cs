using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_dtable</c>: a GDTR or IDTR, 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct KvmDtable
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 16;

    public ulong Base;
    public ushort Limit;
    public ushort Padding0;
    public ushort Padding1;
    public ushort Padding2;
}
