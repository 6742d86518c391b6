namespace Hypervisor.Vmm.Cpu;

/// <summary>The x86 exception vectors the interpreter raises.</summary>
public enum ExceptionVector : byte
{
    /// <summary>#DE: divide error.</summary>
    DivideError = 0,

    /// <summary>#DB: debug.</summary>
    Debug = 1,

    /// <summary>Non-maskable interrupt (an external event, not an exception).</summary>
    Nmi = 2,

    /// <summary>#BP: breakpoint (INT3).</summary>
    Breakpoint = 3,

    /// <summary>#OF: overflow (INTO).</summary>
    Overflow = 4,

    /// <summary>#UD: invalid opcode.</summary>
    InvalidOpcode = 6,

    /// <summary>#NM: device not available.</summary>
    DeviceNotAvailable = 7,

    /// <summary>#DF: double fault.</summary>
    DoubleFault = 8,

    /// <summary>#TS: invalid TSS.</summary>
    InvalidTss = 10,

    /// <summary>#NP: segment not present.</summary>
    SegmentNotPresent = 11,

    /// <summary>#SS: stack-segment fault.</summary>
    StackFault = 12,

    /// <summary>#GP: general protection.</summary>
    GeneralProtection = 13,

    /// <summary>#PF: page fault.</summary>
    PageFault = 14,

    /// <summary>#AC: alignment check.</summary>
    AlignmentCheck = 17,

    /// <summary>#XM: an unmasked SIMD floating-point exception (with CR4.OSXMMEXCPT set; #UD without it).</summary>
    SimdFloatingPoint = 19,
}
