using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The <c>io</c> member of kvm_run's exit union (KVM_EXIT_IO), 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct KvmRunIo
{
    /// <summary>The kernel's size of the member.</summary>
    public const int KernelSize = 16;

    /// <summary><see cref="Direction"/> of an IN.</summary>
    public const byte DirectionIn = 0;

    /// <summary><see cref="Direction"/> of an OUT.</summary>
    public const byte DirectionOut = 1;

    public byte Direction;
    public byte Size;
    public ushort Port;
    public uint Count;

    /// <summary>Offset of the data from the start of kvm_run; items of <see cref="Size"/> bytes follow each other.</summary>
    public ulong DataOffset;
}
