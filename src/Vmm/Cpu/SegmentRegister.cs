namespace Hypervisor.Vmm.Cpu;

/// <summary>The segment registers in the encoding order of the ModRM sreg field.</summary>
public enum SegmentRegister
{
    /// <summary>ES.</summary>
    Es,

    /// <summary>CS.</summary>
    Cs,

    /// <summary>SS.</summary>
    Ss,

    /// <summary>DS.</summary>
    Ds,

    /// <summary>FS.</summary>
    Fs,

    /// <summary>GS.</summary>
    Gs,

    /// <summary>The LDT register.</summary>
    Ldtr,

    /// <summary>The task register.</summary>
    Tr,
}
