using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The first 32 bytes of the kernel's <c>struct kvm_run</c> (the page shared with the vCPU); the exit-specific union
/// starts at <see cref="ExitUnionOffset"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
// unsafe: the padding is a fixed buffer, as in the kernel structure.
internal unsafe struct KvmRunHeader
{
    /// <summary>The size of the fixed part.</summary>
    public const int KernelSize = 32;

    /// <summary>Offset of the exit union (io, mmio, fail_entry, internal, ...).</summary>
    public const int ExitUnionOffset = 32;

    public byte RequestInterruptWindow;
    public byte ImmediateExit;
    public fixed byte Padding1[6];
    public uint ExitReason;
    public byte ReadyForInterruptInjection;
    public byte IfFlag;
    public ushort Flags;
    public ulong Cr8;
    public ulong ApicBase;
}
