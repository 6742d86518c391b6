using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The KVM ioctl request numbers, computed with the Linux <c>_IOC</c> encoding (direction in bits 30–31, argument size
/// in bits 16–29, type in bits 8–15, number in bits 0–7) and the KVM capability numbers this accelerator checks.
/// </summary>
internal static class KvmIoctl
{
    /// <summary>The ioctl type byte of every KVM request.</summary>
    public const uint Kvmio = 0xAE;

    /// <summary>The only KVM API version there has ever been.</summary>
    public const int ApiVersion = 12;

    /// <summary>_IOC_NONE.</summary>
    public const uint DirectionNone = 0;

    /// <summary>_IOC_WRITE: user space passes data to the kernel.</summary>
    public const uint DirectionWrite = 1;

    /// <summary>_IOC_READ: the kernel passes data to user space.</summary>
    public const uint DirectionRead = 2;

    /// <summary>KVM_CAP_USER_MEMORY: KVM_SET_USER_MEMORY_REGION.</summary>
    public const int CapUserMemory = 3;

    /// <summary>KVM_CAP_SET_TSS_ADDR.</summary>
    public const int CapSetTssAddr = 4;

    /// <summary>KVM_CAP_EXT_CPUID: KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2.</summary>
    public const int CapExtCpuid = 7;

    /// <summary>KVM_CAP_NR_VCPUS: the recommended vCPU limit.</summary>
    public const int CapNrVcpus = 9;

    /// <summary>KVM_CAP_IMMEDIATE_EXIT: kvm_run.immediate_exit.</summary>
    public const int CapImmediateExit = 136;

    /// <summary>KVM_GET_API_VERSION.</summary>
    public static readonly nuint GetApiVersion = Io(0x00);

    /// <summary>KVM_CREATE_VM.</summary>
    public static readonly nuint CreateVm = Io(0x01);

    /// <summary>KVM_CHECK_EXTENSION.</summary>
    public static readonly nuint CheckExtension = Io(0x03);

    /// <summary>KVM_GET_VCPU_MMAP_SIZE.</summary>
    public static readonly nuint GetVcpuMmapSize = Io(0x04);

    /// <summary>KVM_GET_SUPPORTED_CPUID (the size is that of the kvm_cpuid2 head).</summary>
    public static readonly nuint GetSupportedCpuid = IoReadWrite(0x05, KvmCpuid2Header.KernelSize);

    /// <summary>KVM_CREATE_IRQCHIP: the in-kernel local APICs, I/O APIC and 8259 pair (before any vCPU is created).</summary>
    public static readonly nuint CreateIrqchip = Io(0x60);

    /// <summary>KVM_CREATE_VCPU.</summary>
    public static readonly nuint CreateVcpu = Io(0x41);

    /// <summary>KVM_SET_USER_MEMORY_REGION.</summary>
    public static readonly nuint SetUserMemoryRegion = IoWrite(0x46, Unsafe.SizeOf<KvmUserspaceMemoryRegion>());

    /// <summary>KVM_SET_TSS_ADDR.</summary>
    public static readonly nuint SetTssAddr = Io(0x47);


    /// <summary>KVM_RUN.</summary>
    public static readonly nuint Run = Io(0x80);

    /// <summary>KVM_GET_REGS.</summary>
    public static readonly nuint GetRegs = IoRead(0x81, Unsafe.SizeOf<KvmRegs>());

    /// <summary>KVM_SET_REGS.</summary>
    public static readonly nuint SetRegs = IoWrite(0x82, Unsafe.SizeOf<KvmRegs>());

    /// <summary>KVM_GET_SREGS.</summary>
    public static readonly nuint GetSregs = IoRead(0x83, Unsafe.SizeOf<KvmSregs>());

    /// <summary>KVM_SET_SREGS.</summary>
    public static readonly nuint SetSregs = IoWrite(0x84, Unsafe.SizeOf<KvmSregs>());

    /// <summary>KVM_SET_CPUID2 (the size is that of the kvm_cpuid2 head).</summary>
    public static readonly nuint SetCpuid2 = IoWrite(0x90, KvmCpuid2Header.KernelSize);

    /// <summary>Linux's <c>_IOC(direction, type, number, size)</c>.</summary>
    /// <param name="direction">_IOC_NONE, _IOC_WRITE, _IOC_READ or both.</param>
    /// <param name="type">The type byte.</param>
    /// <param name="number">The request number within the type.</param>
    /// <param name="size">The argument size, below 2^14.</param>
    public static nuint Ioc(uint direction, uint type, uint number, int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(size, 1 << 14);
        return (direction << 30) | ((uint)size << 16) | ((type & 0xFF) << 8) | (number & 0xFF);
    }

    /// <summary>Linux's <c>_IO(KVMIO, number)</c>.</summary>
    /// <param name="number">The request number.</param>
    public static nuint Io(uint number) => Ioc(DirectionNone, Kvmio, number, 0);

    /// <summary>Linux's <c>_IOR(KVMIO, number, size)</c>.</summary>
    /// <param name="number">The request number.</param>
    /// <param name="size">The argument size.</param>
    public static nuint IoRead(uint number, int size) => Ioc(DirectionRead, Kvmio, number, size);

    /// <summary>Linux's <c>_IOW(KVMIO, number, size)</c>.</summary>
    /// <param name="number">The request number.</param>
    /// <param name="size">The argument size.</param>
    public static nuint IoWrite(uint number, int size) => Ioc(DirectionWrite, Kvmio, number, size);

    /// <summary>Linux's <c>_IOWR(KVMIO, number, size)</c>.</summary>
    /// <param name="number">The request number.</param>
    /// <param name="size">The argument size.</param>
    public static nuint IoReadWrite(uint number, int size) => Ioc(DirectionRead | DirectionWrite, Kvmio, number, size);
}
