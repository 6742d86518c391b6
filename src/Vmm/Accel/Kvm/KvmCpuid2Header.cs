using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The fixed head of the kernel's <c>struct kvm_cpuid2</c> (8 bytes); <see cref="Nent"/> entries of
/// <see cref="KvmCpuidEntry2"/> follow it directly in the same buffer.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 8)]
internal struct KvmCpuid2Header
{
    /// <summary>The kernel's size of the head, which is also the offset of the first entry.</summary>
    public const int KernelSize = 8;

    public uint Nent;
    public uint Padding;
}
