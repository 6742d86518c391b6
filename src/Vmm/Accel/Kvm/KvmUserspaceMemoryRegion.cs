using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_userspace_memory_region</c>: one memslot, 32 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct KvmUserspaceMemoryRegion
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 32;

    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}
