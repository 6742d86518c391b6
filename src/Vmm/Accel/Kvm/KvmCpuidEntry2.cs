using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_cpuid_entry2</c>: one CPUID leaf/subleaf, 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 40)]
internal struct KvmCpuidEntry2
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 40;

    public uint Function;
    public uint Index;
    public uint Flags;
    public uint Eax;
    public uint Ebx;
    public uint Ecx;
    public uint Edx;
    public uint Padding0;
    public uint Padding1;
    public uint Padding2;
}
