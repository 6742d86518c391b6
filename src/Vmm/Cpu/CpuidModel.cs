using System.Runtime.Intrinsics.X86;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The CPUID the interpreter reports, shaped like KVM's: the host CPU's vendor string, the hypervisor bit and
/// hypervisor leaves at 0x40000000 with this project's signature, KVM's paravirtual leaves at 0x40000100 (kvmclock
/// only, so a KVM-aware guest such as Linux takes the TSC frequency from its pvclock instead of calibrating), and exactly the features the interpreter
/// implements — the x86-64 integer ISA, SYSCALL and SYSENTER, MTRRs and PAT, CLFLUSH/CLFLUSHOPT/CLWB, RDPID, SMEP/SMAP,
/// SSE/SSE2 with FXSAVE and XSAVE (x87 and SSE components), the local APIC with x2APIC and the TSC-deadline timer, the x87 FPU's control instructions (FNINIT, FNSTSW, FLDCW … — an x86-64 OS requires the FPU bit) but no x87 arithmetic, MMX, SSE3+, AVX or MCE. Intel's architectural PMU is absent (leaf 0xA is all zero).
/// </summary>
public static class CpuidModel
{
    /// <summary>The signature of leaf 0x40000000 (EBX, ECX, EDX): 12 ASCII bytes naming this project.</summary>
    public const string HypervisorSignature = "HypervisorCS";

    /// <summary>The highest hypervisor leaf (EAX of 0x40000000).</summary>
    public const uint HypervisorMaxLeaf = 0x4000_0010;

    /// <summary>
    /// Leaf 0x40000010 EAX: the TSC frequency in kHz. The interpreter's TSC counts retired instructions (a deterministic
    /// virtual clock), reported as 1 GHz: one tick per instruction, one nanosecond of virtual time.
    /// </summary>
    public const uint TscKhz = 1_000_000;

    /// <summary>Leaf 0x40000010 EBX: the local APIC timer's bus frequency in kHz (1 GHz virtual, the TSC's clock).</summary>
    public const uint ApicBusKhz = 1_000_000;

    /// <summary>
    /// The base of KVM's leaves: 0x40000100, the second of the 0x100-spaced slots that Linux's
    /// <c>hypervisor_cpuid_base</c> scans (0x40000000 holds this project's own leaves).
    /// </summary>
    public const uint KvmLeafBase = 0x4000_0100;

    /// <summary>KVM's signature in EBX, ECX, EDX of <see cref="KvmLeafBase"/>.</summary>
    public const string KvmSignature = "KVMKVMKVM\0\0\0";

    /// <summary>KVM_FEATURE_CLOCKSOURCE2 (bit 3): the kvmclock MSRs at 0x4b564d00/0x4b564d01.</summary>
    public const uint KvmFeatureClockSource2 = 1u << 3;

    /// <summary>KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (bit 24): the pvclock's PVCLOCK_TSC_STABLE_BIT may be trusted.</summary>
    public const uint KvmFeatureClockSourceStableBit = 1u << 24;

    /// <summary>EAX of KVM_CPUID_FEATURES (<see cref="KvmLeafBase"/> + 1): kvmclock and its stable bit, nothing else.</summary>
    public const uint KvmFeatures = KvmFeatureClockSource2 | KvmFeatureClockSourceStableBit;

    /// <summary>The XCR0 bits XSAVE supports: x87 (0) and SSE (1).</summary>
    public const ulong SupportedXcr0 = 0b11;

    /// <summary>The XSAVE area's size for every supported component: the 512-byte legacy area and the 64-byte header.</summary>
    public const uint XsaveAreaBytes = 576;

    /// <summary>Leaf 1 EDX: FPU (the x87 control instructions; no x87 arithmetic), PSE, TSC, MSR, PAE, CX8, APIC, SEP, MTRR, PGE, CMOV, PAT, CLFSH, FXSR, SSE, SSE2.</summary>
    public const uint Leaf1Edx = 1u | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 11) | (1u << 12)
        | (1u << 13) | (1u << 15) | (1u << 16) | (1u << 19) | (1u << 24) | (1u << 25) | (1u << 26);

    /// <summary>Leaf 1 ECX: CX16, x2APIC, POPCNT, TSC-deadline, XSAVE, hypervisor (OSXSAVE, bit 27, follows CR4.OSXSAVE).</summary>
    public const uint Leaf1Ecx = (1u << 13) | (1u << 23) | (1u << 26) | (1u << 31) | Leaf1EcxApic;

    /// <summary>Leaf 1 ECX bits of the local APIC model: x2APIC (21) and the TSC-deadline timer (24).</summary>
    public const uint Leaf1EcxApic = (1u << 21) | (1u << 24);

    /// <summary>Leaf 1 ECX bit 27: OSXSAVE, set while CR4.OSXSAVE is.</summary>
    public const uint Leaf1EcxOsxsave = 1u << 27;

    /// <summary>Leaf 7 EBX: BMI1 (TZCNT), SMEP, SMAP, CLFLUSHOPT, CLWB.</summary>
    public const uint Leaf7Ebx = (1u << 3) | (1u << 7) | (1u << 20) | (1u << 23) | (1u << 24);

    /// <summary>Leaf 7 EDX: IA32_ARCH_CAPABILITIES (bit 29).</summary>
    public const uint Leaf7Edx = 1u << 29;

    /// <summary>
    /// IA32_ARCH_CAPABILITIES (MSR 0x10A): the interpreter executes nothing speculatively, so it declares itself not
    /// vulnerable to the transient-execution attacks Linux otherwise mitigates at every kernel entry and exit (page-table
    /// isolation, VERW buffer clearing …): RDCL_NO (0), SSB_NO (4), MDS_NO (5), PSCHANGE_MC_NO (6), TAA_NO (8),
    /// SBDR_SSDP_NO (13), FBSDP_NO (14), PSDP_NO (15), BHI_NO (20), PBRSB_NO (24), GDS_NO (26), RFDS_NO (27). No control
    /// bit (IBRS_ALL and the like) is claimed, so no mitigation MSR needs modelling.
    /// </summary>
    public const ulong ArchCapabilities = (1ul << 0) | (1ul << 4) | (1ul << 5) | (1ul << 6) | (1ul << 8) | (1ul << 13) | (1ul << 14)
        | (1ul << 15) | (1ul << 20) | (1ul << 24) | (1ul << 26) | (1ul << 27);

    /// <summary>Leaf 7 ECX: RDPID.</summary>
    public const uint Leaf7Ecx = 1u << 22;

    /// <summary>Leaf 0x80000001 EDX: SYSCALL/SYSRET, NX, 1 GiB pages, RDTSCP, long mode.</summary>
    public const uint ExtendedEdx = (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29);

    /// <summary>Leaf 0x80000001 ECX: LAHF/SAHF in 64-bit mode, ABM (LZCNT).</summary>
    public const uint ExtendedEcx = (1u << 0) | (1u << 5);

    private const uint MaxBasicLeaf = 0xD;

    /// <summary>The 12-byte vendor string of leaf 0: the host CPU's (as KVM shows it), or "GenuineIntel" off x86.</summary>
    public static string Vendor { get; } = HostVendor();

    /// <summary>The four registers CPUID returns for <paramref name="leaf"/>/<paramref name="subleaf"/> on vCPU <paramref name="apicId"/>.</summary>
    /// <param name="leaf">EAX.</param>
    /// <param name="subleaf">ECX.</param>
    /// <param name="apicId">The vCPU's initial APIC id.</param>
    /// <param name="osxsave">CR4.OSXSAVE (mirrored in leaf 1 ECX bit 27).</param>
    public static (uint Eax, uint Ebx, uint Ecx, uint Edx) Query(uint leaf, uint subleaf, int apicId, bool osxsave = false)
    {
        switch (leaf)
        {
            case 0:
                return (MaxBasicLeaf, Word(Vendor, 0), Word(Vendor, 8), Word(Vendor, 4));
            case 1:
                // Family 6, model 0x55-like signature; EBX: APIC id, one logical processor per package, CLFLUSH 64 B.
                return (0x0005_0654, ((uint)apicId << 24) | (1u << 16) | (8u << 8), Leaf1Ecx | (osxsave ? Leaf1EcxOsxsave : 0), Leaf1Edx);
            case 7 when subleaf == 0:
                return (0, Leaf7Ebx, Leaf7Ecx, Leaf7Edx);
            case 0xD when subleaf == 0:
                // Supported XCR0 (EDX:EAX), the area for the enabled components and the maximum: equal, since both
                // components live in the legacy area (XCR0 is 1 or 3, 576 bytes either way).
                return ((uint)SupportedXcr0, XsaveAreaBytes, XsaveAreaBytes, 0);
            case 0x4000_0000:
                return (HypervisorMaxLeaf, Word(HypervisorSignature, 0), Word(HypervisorSignature, 4), Word(HypervisorSignature, 8));
            case 0x4000_0010:
                return (TscKhz, ApicBusKhz, 0, 0);
            case KvmLeafBase:
                return (KvmLeafBase + 1, Word(KvmSignature, 0), Word(KvmSignature, 4), Word(KvmSignature, 8));
            case KvmLeafBase + 1:
                // EDX: no hints (KVM_HINTS_REALTIME clear).
                return (KvmFeatures, 0, 0, 0);
            case 0x8000_0000:
                return (0x8000_0008, 0, 0, 0);
            case 0x8000_0001:
                return (0, 0, ExtendedEcx, ExtendedEdx);
            case 0x8000_0008:
                // 48 physical and 48 linear address bits, as the walker implements.
                return (0x3030, 0, 0, 0);
            default:
                // Leaf 0xA (architectural PMU), 0xD's other subleaves and everything not listed: all zero.
                return (0, 0, 0, 0);
        }
    }

    private static string HostVendor()
    {
        if (!X86Base.IsSupported)
        {
            return "GenuineIntel";
        }

        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> bytes = stackalloc byte[12];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes, ebx);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], edx);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes[8..], ecx);
        return System.Text.Encoding.ASCII.GetString(bytes);
    }

    private static uint Word(string text, int offset) =>
        (uint)(text[offset] | (text[offset + 1] << 8) | (text[offset + 2] << 16) | (text[offset + 3] << 24));
}
