using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>glibc's x86-64 <c>struct sigaction</c>: handler, 1024-bit mask, flags, restorer; 152 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 152)]
// unsafe: the signal mask is a fixed buffer, as in glibc's structure.
internal unsafe struct KernelSigaction
{
    /// <summary>The size of the structure in glibc on x86-64.</summary>
    public const int NativeSize = 152;

    public nint Handler;
    public fixed ulong Mask[16];
    public int Flags;
    public int Padding;
    public nint Restorer;
}
