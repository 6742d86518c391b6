using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The <c>fail_entry</c> member of kvm_run's exit union (KVM_EXIT_FAIL_ENTRY), 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct KvmRunFailEntry
{
    /// <summary>The kernel's size of the member.</summary>
    public const int KernelSize = 16;

    public ulong HardwareEntryFailureReason;
    public uint Cpu;
}
