using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The <c>mmio</c> member of kvm_run's exit union (KVM_EXIT_MMIO), 24 bytes with tail padding.</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
// unsafe: the data is a fixed buffer, as in the kernel structure.
internal unsafe struct KvmRunMmio
{
    /// <summary>The kernel's size of the member.</summary>
    public const int KernelSize = 24;

    /// <summary>Largest access KVM hands to user space at once.</summary>
    public const int MaxLength = 8;

    public ulong PhysAddr;
    public fixed byte Data[MaxLength];
    public uint Len;
    public byte IsWrite;
}
