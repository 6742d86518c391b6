using System.Buffers.Binary;
using System.Text;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Acpi;

/// <summary>
/// Builds the VM's ACPI tables (ACPI 6.0 layouts): an RSDP (revision 2) pointing at an XSDT that lists the FADT and the
/// MADT; the FADT (revision 6, not hardware-reduced) describing the fixed hardware of <see cref="AcpiPlatform"/> with
/// both its 32-bit and its 64-bit (GAS) fields, a FACS and a DSDT; the DSDT's only object is <c>\_S5</c>, whose SLP_TYP
/// is the one <see cref="PowerOff"/> acts on; the MADT lists one enabled local APIC per vCPU (APIC id and processor UID
/// = vCPU index), the I/O APIC at GSI 0, the ISA overrides IRQ 0 → GSI 2 (edge, active high) and the SCI's IRQ 9
/// (level, active high), and LINT1 as NMI on every processor.
/// </summary>
/// <remarks>Every table's checksum (and the RSDP's two) is filled so its bytes sum to 0.</remarks>
public sealed class AcpiTableBuilder
{
    /// <summary>OEMID of every table (6 bytes).</summary>
    public const string OemId = "HVCS  ";

    /// <summary>OEM Table ID of every table (8 bytes).</summary>
    public const string OemTableId = "HVCSVM  ";

    /// <summary>OEM Revision of every table.</summary>
    public const uint OemRevision = 1;

    /// <summary>Creator ID of every table (4 bytes).</summary>
    public const string CreatorId = "HVCS";

    /// <summary>Creator Revision of every table.</summary>
    public const uint CreatorRevision = 1;

    /// <summary>Size of the common table header.</summary>
    public const int HeaderSize = 36;

    /// <summary>Size of the RSDP, revision 2.</summary>
    public const int RsdpSize = 36;

    /// <summary>Size of the FACS.</summary>
    public const int FacsSize = 64;

    /// <summary>Size of the FADT, revision 6 (ACPI 6.0).</summary>
    public const int FadtSize = 276;

    /// <summary>FADT revision (ACPI 6.0).</summary>
    public const byte FadtRevision = 6;

    /// <summary>MADT revision (ACPI 6.0).</summary>
    public const byte MadtRevision = 4;

    /// <summary>DSDT revision (2: AML integers are 64 bits).</summary>
    public const byte DsdtRevision = 2;

    /// <summary>XSDT revision.</summary>
    public const byte XsdtRevision = 1;

    /// <summary>
    /// The most vCPUs the MADT describes: processor local APIC entries carry 8-bit APIC ids and UIDs, and UID 0xFF
    /// means "all processors" in the local APIC NMI entry.
    /// </summary>
    public const int MaxCpuCount = 255;

    /// <summary>The local APICs' MMIO base in the MADT.</summary>
    public const uint LocalApicAddress = 0xFEE0_0000;

    /// <summary>FADT flags: WBINVD, PROC_C1, PWR_BUTTON, SLP_BUTTON, FIX_RTC (no fixed buttons or RTC wake), TMR_VAL_EXT, RESET_REG_SUP.</summary>
    public const uint FadtFlags = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 10);

    /// <summary>IAPC_BOOT_ARCH: LEGACY_DEVICES (ISA devices such as the UART and the PICs) and 8042.</summary>
    public const ushort BootArchitectureFlags = (1 << 0) | (1 << 1);

    /// <summary>
    /// P_LVL2_LAT and P_LVL3_LAT: above 100 µs and 1000 µs respectively, which means C2 and C3 are not supported.
    /// </summary>
    public const ushort NoCStateLatency = 0x0FFF;

    /// <summary>MADT flag PCAT_COMPAT: the 8259 PICs are present too.</summary>
    public const uint MadtPcatCompat = 1;

    /// <summary>MPS INTI flags of the IRQ 0 override: edge-triggered, active high (how the PIT's output is wired).</summary>
    public const ushort Irq0OverrideFlags = 0b01_01;

    /// <summary>MPS INTI flags of the SCI override: level-triggered, active high.</summary>
    public const ushort SciOverrideFlags = 0b11_01;

    /// <summary>MPS INTI flags of the LINT1 NMI entry: edge-triggered, active high.</summary>
    public const ushort LocalNmiFlags = 0b01_01;

    private const int XsdtEntries = 2;

    /// <summary>Creates a builder for a VM with <paramref name="cpuCount"/> vCPUs.</summary>
    /// <param name="cpuCount">vCPUs, 1 to <see cref="MaxCpuCount"/>.</param>
    /// <param name="s5SleepType">The SLP_TYP of S5 (0–7), as <see cref="PowerOff.S5SleepType"/>.</param>
    /// <param name="ioApicId">The I/O APIC's id (0–255), as its ID register reads.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside its range.</exception>
    public AcpiTableBuilder(int cpuCount, int s5SleepType = 0, int ioApicId = IoApic.InitialId)
    {
        if (cpuCount is < 1 or > MaxCpuCount)
        {
            throw new ArgumentOutOfRangeException(nameof(cpuCount), cpuCount, $"vCPU count {cpuCount} is invalid: the MADT describes 1 to {MaxCpuCount} processors (8-bit APIC ids, UID 0xFF meaning all)");
        }

        if (s5SleepType is < 0 or > 7)
        {
            throw new ArgumentOutOfRangeException(nameof(s5SleepType), s5SleepType, $"S5 sleep type {s5SleepType} is invalid: SLP_TYP is a 3-bit field (0–7)");
        }

        if (ioApicId is < 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(ioApicId), ioApicId, $"I/O APIC id {ioApicId} is invalid: the MADT's I/O APIC id is one byte (0–255)");
        }

        CpuCount = cpuCount;
        S5SleepType = s5SleepType;
        IoApicId = ioApicId;
    }

    /// <summary>The vCPUs the MADT lists.</summary>
    public int CpuCount { get; }

    /// <summary>The SLP_TYP of <c>\_S5</c>.</summary>
    public int S5SleepType { get; }

    /// <summary>The I/O APIC id in the MADT.</summary>
    public int IoApicId { get; }

    /// <summary>
    /// Lays the tables out from <paramref name="baseAddress"/>: RSDP, XSDT, FACS (64-byte aligned), FADT, DSDT and MADT,
    /// each on a 16-byte boundary.
    /// </summary>
    /// <param name="baseAddress">Where the RSDP goes: 16-byte aligned, with every table below 4 GiB.</param>
    /// <exception cref="ArgumentOutOfRangeException">The base is not 16-byte aligned, or the tables would cross 4 GiB
    /// (the FADT's and RSDP's 32-bit fields must reach them).</exception>
    public AcpiTables Build(ulong baseAddress = AcpiPlatform.TablesBase)
    {
        if (baseAddress % 16 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(baseAddress), baseAddress, $"ACPI tables base 0x{baseAddress:x} is invalid: the RSDP must be on a 16-byte boundary");
        }

        var dsdt = Dsdt();
        var madt = Madt();
        var rsdpAt = 0;
        var xsdtAt = Align(rsdpAt + RsdpSize, 16);
        var xsdtSize = HeaderSize + (8 * XsdtEntries);
        var facsAt = Align(xsdtAt + xsdtSize, 64);
        var fadtAt = Align(facsAt + FacsSize, 16);
        var dsdtAt = Align(fadtAt + FadtSize, 16);
        var madtAt = Align(dsdtAt + dsdt.Length, 16);
        var size = madtAt + madt.Length;
        if (baseAddress + (ulong)size > 1UL << 32)
        {
            throw new ArgumentOutOfRangeException(nameof(baseAddress), baseAddress, $"ACPI tables at 0x{baseAddress:x} (0x{size:x} bytes) are invalid: they must lie below 4 GiB, where the 32-bit table pointers reach");
        }

        var image = new byte[size];
        var span = image.AsSpan();
        var at = (int offset) => baseAddress + (ulong)offset;
        Facs(span.Slice(facsAt, FacsSize));
        Fadt(span.Slice(fadtAt, FadtSize), at(facsAt), at(dsdtAt));
        dsdt.CopyTo(span[dsdtAt..]);
        madt.CopyTo(span[madtAt..]);
        Xsdt(span.Slice(xsdtAt, xsdtSize), [at(fadtAt), at(madtAt)]);
        Rsdp(span.Slice(rsdpAt, RsdpSize), at(xsdtAt));
        return new AcpiTables(baseAddress, image, at(rsdpAt), at(xsdtAt), at(facsAt), at(fadtAt), at(dsdtAt), at(madtAt));
    }

    private static int Align(int value, int alignment) => (value + alignment - 1) & -alignment;

    private static void Rsdp(Span<byte> s, ulong xsdt)
    {
        Encoding.ASCII.GetBytes("RSD PTR ", s);
        Encoding.ASCII.GetBytes(OemId, s[9..]);
        s[15] = 2;
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], RsdpSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], xsdt);
        AcpiChecksum.Fill(s[..20], 8);
        AcpiChecksum.Fill(s[..RsdpSize], 32);
    }

    private static void Header(Span<byte> table, string signature, byte revision)
    {
        Encoding.ASCII.GetBytes(signature, table);
        BinaryPrimitives.WriteUInt32LittleEndian(table[4..], (uint)table.Length);
        table[8] = revision;
        Encoding.ASCII.GetBytes(OemId, table[10..]);
        Encoding.ASCII.GetBytes(OemTableId, table[16..]);
        BinaryPrimitives.WriteUInt32LittleEndian(table[24..], OemRevision);
        Encoding.ASCII.GetBytes(CreatorId, table[28..]);
        BinaryPrimitives.WriteUInt32LittleEndian(table[32..], CreatorRevision);
    }

    private static void Xsdt(Span<byte> s, ReadOnlySpan<ulong> entries)
    {
        Header(s, "XSDT", XsdtRevision);
        for (var i = 0; i < entries.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(s[(HeaderSize + (8 * i))..], entries[i]);
        }

        AcpiChecksum.Fill(s, 9);
    }

    private static void Facs(Span<byte> s)
    {
        // No checksum: the FACS is read-write memory shared with the OS (the global lock, the waking vector).
        Encoding.ASCII.GetBytes("FACS", s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], FacsSize);
        s[32] = 2;
    }

    private static void Fadt(Span<byte> s, ulong facs, ulong dsdt)
    {
        Header(s, "FACP", FadtRevision);
        BinaryPrimitives.WriteUInt32LittleEndian(s[36..], (uint)facs);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], (uint)dsdt);
        BinaryPrimitives.WriteUInt16LittleEndian(s[46..], AcpiPlatform.SciIrq);

        // SMI_CMD 0 (offset 48) with ACPI_ENABLE/ACPI_DISABLE 0: the machine is always in ACPI mode.
        BinaryPrimitives.WriteUInt32LittleEndian(s[56..], AcpiPlatform.Pm1aEventPort);
        BinaryPrimitives.WriteUInt32LittleEndian(s[64..], AcpiPlatform.Pm1aControlPort);
        BinaryPrimitives.WriteUInt32LittleEndian(s[76..], AcpiPlatform.PmTimerPort);
        s[88] = AcpiPlatform.Pm1EventLength;
        s[89] = AcpiPlatform.Pm1ControlLength;
        s[91] = AcpiPlatform.PmTimerLength;
        BinaryPrimitives.WriteUInt16LittleEndian(s[96..], NoCStateLatency);
        BinaryPrimitives.WriteUInt16LittleEndian(s[98..], NoCStateLatency);
        s[108] = AcpiPlatform.CenturyIndex;
        BinaryPrimitives.WriteUInt16LittleEndian(s[109..], BootArchitectureFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[112..], FadtFlags);
        GenericAddress.Port(AcpiPlatform.ResetPort, 1).Write(s[116..]);
        s[128] = AcpiPlatform.ResetValue;
        // X_FIRMWARE_CTRL (offset 132) stays 0: the FACS is below 4 GiB, and with both fields set Linux's ACPICA installs
        // it twice (it honours the 32-bit FACS address too).
        BinaryPrimitives.WriteUInt64LittleEndian(s[140..], dsdt);
        GenericAddress.Port(AcpiPlatform.Pm1aEventPort, AcpiPlatform.Pm1EventLength).Write(s[148..]);
        GenericAddress.Port(AcpiPlatform.Pm1aControlPort, AcpiPlatform.Pm1ControlLength).Write(s[172..]);
        GenericAddress.Port(AcpiPlatform.PmTimerPort, AcpiPlatform.PmTimerLength).Write(s[208..]);
        AcpiChecksum.Fill(s, 9);
    }

    private byte[] Dsdt()
    {
        // \_S5: SLP_TYPa, SLP_TYPb, two reserved elements.
        var s5 = AmlEncoder.NamedPackage("_S5", (ulong)S5SleepType, (ulong)S5SleepType, 0, 0);
        var table = new byte[HeaderSize + s5.Length];
        s5.CopyTo(table, HeaderSize);
        Header(table, "DSDT", DsdtRevision);
        AcpiChecksum.Fill(table, 9);
        return table;
    }

    private byte[] Madt()
    {
        const int localApicSize = 8, ioApicSize = 12, overrideSize = 10, nmiSize = 6;
        var table = new byte[HeaderSize + 8 + (CpuCount * localApicSize) + ioApicSize + (2 * overrideSize) + nmiSize];
        var s = table.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[36..], LocalApicAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], MadtPcatCompat);
        var at = HeaderSize + 8;
        for (var cpu = 0; cpu < CpuCount; cpu++)
        {
            var e = s.Slice(at, localApicSize);
            e[0] = 0;
            e[1] = localApicSize;
            e[2] = (byte)cpu;
            e[3] = (byte)cpu;
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], 1);
            at += localApicSize;
        }

        var io = s.Slice(at, ioApicSize);
        io[0] = 1;
        io[1] = ioApicSize;
        io[2] = (byte)IoApicId;
        BinaryPrimitives.WriteUInt32LittleEndian(io[4..], (uint)IoApic.BaseAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(io[8..], 0);
        at += ioApicSize;

        foreach (var (irq, gsi, flags) in new (byte, uint, ushort)[] { (0, 2, Irq0OverrideFlags), (AcpiPlatform.SciIrq, AcpiPlatform.SciIrq, SciOverrideFlags) })
        {
            var e = s.Slice(at, overrideSize);
            e[0] = 2;
            e[1] = overrideSize;
            e[2] = 0;
            e[3] = irq;
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], gsi);
            BinaryPrimitives.WriteUInt16LittleEndian(e[8..], flags);
            at += overrideSize;
        }

        var nmi = s.Slice(at, nmiSize);
        nmi[0] = 4;
        nmi[1] = nmiSize;
        nmi[2] = 0xFF;
        BinaryPrimitives.WriteUInt16LittleEndian(nmi[3..], LocalNmiFlags);
        nmi[5] = 1;

        Header(s, "APIC", MadtRevision);
        AcpiChecksum.Fill(s, 9);
        return table;
    }
}
