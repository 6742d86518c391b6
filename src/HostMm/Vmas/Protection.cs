namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// Access a mapping grants (Linux's <c>PROT_*</c>). <see cref="None"/> is <c>PROT_NONE</c>: mapped but every
/// access faults. Only combinations that x86 page tables can express are valid; see <see cref="ProtectionRules"/>.
/// </summary>
[Flags]
public enum Protection
{
    /// <summary>No access (<c>PROT_NONE</c>).</summary>
    None = 0,

    /// <summary>Reads allowed (<c>PROT_READ</c>).</summary>
    Read = 1,

    /// <summary>Writes allowed (<c>PROT_WRITE</c>); needs <see cref="Read"/>.</summary>
    Write = 2,

    /// <summary>Instruction fetches allowed (<c>PROT_EXEC</c>); needs <see cref="Read"/>.</summary>
    Execute = 4,
}
