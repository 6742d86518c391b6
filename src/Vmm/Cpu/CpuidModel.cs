namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The CPUID the interpreter reports: a coherent x86-64 integer feature set — what it implements and nothing
/// more (no x87/SSE state, no SYSCALL), with the hypervisor bit set and our own vendor string.
/// </summary>
public static class CpuidModel
{
    /// <summary>The 12-byte vendor string of leaf 0.</summary>
    public const string Vendor = "HypervisorCS";

    /// <summary>Leaf 1 EDX: PSE, TSC, MSR, PAE, CX8, APIC, PGE, CMOV, PAT.</summary>
    public const uint Leaf1Edx = (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 13) | (1u << 15) | (1u << 16);

    /// <summary>Leaf 1 ECX: CX16, x2APIC, POPCNT, TSC-deadline, hypervisor.</summary>
    public const uint Leaf1Ecx = (1u << 13) | (1u << 23) | (1u << 31) | Leaf1EcxApic;

    /// <summary>Leaf 1 ECX bits of the local APIC model: x2APIC (21) and the TSC-deadline timer (24).</summary>
    public const uint Leaf1EcxApic = (1u << 21) | (1u << 24);

    /// <summary>Leaf 7 EBX: BMI1 (TZCNT), SMEP, SMAP.</summary>
    public const uint Leaf7Ebx = (1u << 3) | (1u << 7) | (1u << 20);

    /// <summary>Leaf 0x80000001 EDX: NX, 1 GiB pages, RDTSCP, long mode.</summary>
    public const uint ExtendedEdx = (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29);

    /// <summary>Leaf 0x80000001 ECX: LAHF/SAHF in 64-bit mode, ABM (LZCNT).</summary>
    public const uint ExtendedEcx = (1u << 0) | (1u << 5);

    /// <summary>The four registers CPUID returns for <paramref name="leaf"/>/<paramref name="subleaf"/> on vCPU <paramref name="apicId"/>.</summary>
    public static (uint Eax, uint Ebx, uint Ecx, uint Edx) Query(uint leaf, uint subleaf, int apicId)
    {
        switch (leaf)
        {
            case 0:
                return (7, Word(0), Word(8), Word(4));
            case 1:
                // Family 6, model 0x55-like signature; EBX: APIC id, one logical processor per package, CLFLUSH 64 B.
                return (0x0005_0654, ((uint)apicId << 24) | (1u << 16) | (8u << 8), Leaf1Ecx, Leaf1Edx);
            case 7 when subleaf == 0:
                return (0, Leaf7Ebx, 0, 0);
            case 0x8000_0000:
                return (0x8000_0008, 0, 0, 0);
            case 0x8000_0001:
                return (0, 0, ExtendedEcx, ExtendedEdx);
            case 0x8000_0008:
                // 48 physical and 48 linear address bits, as the walker implements.
                return (0x3030, 0, 0, 0);
            default:
                return (0, 0, 0, 0);
        }
    }

    private static uint Word(int offset) =>
        (uint)(Vendor[offset] | (Vendor[offset + 1] << 8) | (Vendor[offset + 2] << 16) | (Vendor[offset + 3] << 24));
}
