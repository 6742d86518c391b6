using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_regs</c> (x86): 18 64-bit registers, 144 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 144)]
internal struct KvmRegs
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 144;

    public ulong Rax;
    public ulong Rbx;
    public ulong Rcx;
    public ulong Rdx;
    public ulong Rsi;
    public ulong Rdi;
    public ulong Rsp;
    public ulong Rbp;
    public ulong R8;
    public ulong R9;
    public ulong R10;
    public ulong R11;
    public ulong R12;
    public ulong R13;
    public ulong R14;
    public ulong R15;
    public ulong Rip;
    public ulong Rflags;
}
