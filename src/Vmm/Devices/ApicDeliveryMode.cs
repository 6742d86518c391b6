namespace Hypervisor.Vmm.Devices;

/// <summary>The delivery mode of an interrupt message (ICR bits 10:8, LVT bits 10:8), as the SDM numbers them.</summary>
public enum ApicDeliveryMode
{
    /// <summary>The vector is set in the target's IRR.</summary>
    Fixed = 0,

    /// <summary>Fixed, to one of the matching APICs (here: the lowest-numbered one).</summary>
    LowestPriority = 1,

    /// <summary>System management interrupt (not modelled: ignored).</summary>
    Smi = 2,

    /// <summary>A non-maskable interrupt (vector 2, ignores RFLAGS.IF).</summary>
    Nmi = 4,

    /// <summary>INIT: puts an application processor into wait-for-SIPI.</summary>
    Init = 5,

    /// <summary>Start-up IPI: starts a waiting processor at vector × 4 KiB.</summary>
    StartUp = 6,

    /// <summary>External interrupt from an 8259 (not modelled: ignored).</summary>
    ExtInt = 7,
}
