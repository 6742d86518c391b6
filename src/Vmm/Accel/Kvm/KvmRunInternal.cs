using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The <c>internal</c> member of kvm_run's exit union (KVM_EXIT_INTERNAL_ERROR), 136 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 136)]
// unsafe: the data is a fixed buffer, as in the kernel structure.
internal unsafe struct KvmRunInternal
{
    /// <summary>The kernel's size of the member.</summary>
    public const int KernelSize = 136;

    /// <summary>Capacity of <see cref="Data"/>.</summary>
    public const int MaxData = 16;

    public uint Suberror;
    public uint Ndata;
    public fixed ulong Data[MaxData];
}
