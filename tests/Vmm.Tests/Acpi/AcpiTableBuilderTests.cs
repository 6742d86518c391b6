using System.Buffers.Binary;
using System.Text;
using Hypervisor.Vmm.Acpi;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Acpi;

/// <summary>
/// The tables parsed back from their bytes with the ACPI 6.0 layouts (RSDP §5.2.5.3, table header §5.2.6, XSDT
/// §5.2.8, FADT §5.2.9 table 5-34, FACS §5.2.10, MADT §5.2.12 and its entries, GAS §5.2.3.2) and every checksum.
/// </summary>
public sealed class AcpiTableBuilderTests
{
    private static ReadOnlySpan<byte> At(AcpiTables tables, ulong gpa, int length)
    {
        Assert.That(gpa, Is.GreaterThanOrEqualTo(tables.BaseAddress));
        Assert.That(gpa + (ulong)length, Is.LessThanOrEqualTo(tables.EndAddress), $"[0x{gpa:x}, +{length}) lies outside the tables");
        return tables.Image.Span.Slice((int)(gpa - tables.BaseAddress), length);
    }

    private static byte Sum(ReadOnlySpan<byte> bytes)
    {
        var sum = 0;
        foreach (var b in bytes)
        {
            sum += b;
        }

        return (byte)sum;
    }

    private static uint U32(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(s[offset..]);

    private static ushort U16(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(s[offset..]);

    private static ulong U64(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(s[offset..]);

    private static string Ascii(ReadOnlySpan<byte> s, int offset, int length) => Encoding.ASCII.GetString(s.Slice(offset, length));

    /// <summary>A table by its header: signature, its whole length, checksum zero; returns its bytes.</summary>
    private static byte[] Table(AcpiTables tables, ulong gpa, string signature, byte revision)
    {
        var header = At(tables, gpa, 36);
        var length = (int)U32(header, 4);
        var table = At(tables, gpa, length).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(Ascii(table, 0, 4), Is.EqualTo(signature));
            Assert.That(table[8], Is.EqualTo(revision), $"{signature} revision");
            Assert.That(Sum(table), Is.Zero, $"{signature} checksum");
            Assert.That(Ascii(table, 10, 6), Has.Length.EqualTo(6));
            Assert.That(Ascii(table, 10, 6), Is.EqualTo(Ascii(At(tables, tables.RsdpAddress, 36), 9, 6)), $"{signature} OEMID matches the RSDP's");
            Assert.That(Ascii(table, 28, 4).All(c => c is >= ' ' and <= '~'), $"{signature} creator id is printable");
        });
        return table;
    }

    /// <summary>Asserts a GAS: system I/O at <paramref name="port"/>, <paramref name="bits"/> wide, at bit 0.</summary>
    private static void AssertPortGas(ReadOnlySpan<byte> fadt, int offset, ushort port, int bits, string what)
    {
        var gas = fadt.Slice(offset, 12).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(gas[0], Is.EqualTo(1), $"{what}: address space is system I/O");
            Assert.That(gas[1], Is.EqualTo(bits), $"{what}: register bit width");
            Assert.That(gas[2], Is.Zero, $"{what}: bit offset");
            Assert.That(gas[3], Is.InRange(0, 4), $"{what}: access size is a defined code");
            if (gas[3] != 0)
            {
                Assert.That(8 << gas[3], Is.LessThanOrEqualTo(bits * 2).And.GreaterThanOrEqualTo(8), $"{what}: access size fits the register");
            }

            Assert.That(U64(gas, 4), Is.EqualTo(port), $"{what}: address");
        });
    }

    [Test]
    public void RsdpIsRevision2WithBothChecksumsAndPointsAtTheXsdt()
    {
        var tables = new AcpiTableBuilder(1).Build();
        var rsdp = At(tables, tables.RsdpAddress, 36).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(tables.RsdpAddress % 16, Is.Zero, "the legacy scan looks on 16-byte boundaries");
            Assert.That(tables.RsdpAddress, Is.InRange(0xE0000UL, 0xFFFFFUL - 36), "inside the BIOS area the legacy scan covers");
            Assert.That(Ascii(rsdp, 0, 8), Is.EqualTo("RSD PTR "));
            Assert.That(Sum(rsdp.AsSpan(0, 20)), Is.Zero, "checksum over the first 20 bytes");
            Assert.That(rsdp[15], Is.EqualTo(2), "revision 2 (ACPI 2.0+, with the XSDT)");
            Assert.That(U32(rsdp, 20), Is.EqualTo(36), "length");
            Assert.That(U64(rsdp, 24), Is.EqualTo(tables.XsdtAddress));
            Assert.That(Sum(rsdp), Is.Zero, "extended checksum over all 36 bytes");
        });
    }

    [Test]
    public void XsdtListsTheFadtAndTheMadt()
    {
        var tables = new AcpiTableBuilder(2).Build();
        var xsdt = Table(tables, tables.XsdtAddress, "XSDT", 1);
        var entries = Enumerable.Range(0, (xsdt.Length - 36) / 8).Select(i => U64(xsdt, 36 + (8 * i))).ToArray();

        Assert.That((xsdt.Length - 36) % 8, Is.Zero);
        Assert.That(entries.Select(e => Ascii(At(tables, e, 4), 0, 4)), Is.EquivalentTo(new[] { "FACP", "APIC" }));
        Assert.That(entries, Is.EquivalentTo(new[] { tables.FadtAddress, tables.MadtAddress }));
    }

    [Test]
    public void FadtDescribesTheFixedHardware()
    {
        var tables = new AcpiTableBuilder(1).Build();
        var fadt = Table(tables, tables.FadtAddress, "FACP", 6);

        Assert.Multiple(() =>
        {
            Assert.That(fadt, Has.Length.EqualTo(276), "revision 6 length");
            Assert.That(U32(fadt, 36), Is.EqualTo(tables.FacsAddress), "FIRMWARE_CTRL");
            Assert.That(U32(fadt, 40), Is.EqualTo(tables.DsdtAddress), "DSDT");
            Assert.That(U16(fadt, 46), Is.EqualTo(9), "SCI_INT");
            Assert.That(U32(fadt, 48), Is.Zero, "SMI_CMD: no SMI command port, ACPI mode is fixed");
            Assert.That(fadt[52], Is.Zero, "ACPI_ENABLE");
            Assert.That(fadt[53], Is.Zero, "ACPI_DISABLE");
            Assert.That(U32(fadt, 56), Is.EqualTo(0x600), "PM1a_EVT_BLK");
            Assert.That(U32(fadt, 60), Is.Zero, "PM1b_EVT_BLK");
            Assert.That(U32(fadt, 64), Is.EqualTo(0x604), "PM1a_CNT_BLK");
            Assert.That(U32(fadt, 64), Is.EqualTo(PowerOff.Port), "PM1a_CNT_BLK is the power-off register");
            Assert.That(U32(fadt, 68), Is.Zero, "PM1b_CNT_BLK");
            Assert.That(U32(fadt, 72), Is.Zero, "PM2_CNT_BLK");
            Assert.That(U32(fadt, 76), Is.EqualTo(0x608), "PM_TMR_BLK");
            Assert.That(U32(fadt, 80), Is.Zero, "GPE0_BLK");
            Assert.That(U32(fadt, 84), Is.Zero, "GPE1_BLK");
            Assert.That(fadt[88], Is.EqualTo(4), "PM1_EVT_LEN");
            Assert.That(fadt[89], Is.EqualTo(2), "PM1_CNT_LEN");
            Assert.That(fadt[90], Is.Zero, "PM2_CNT_LEN");
            Assert.That(fadt[91], Is.EqualTo(4), "PM_TMR_LEN");
            Assert.That(fadt[92], Is.Zero, "GPE0_BLK_LEN");
            Assert.That(U16(fadt, 96), Is.GreaterThan(100), "P_LVL2_LAT > 100: no C2");
            Assert.That(U16(fadt, 98), Is.GreaterThan(1000), "P_LVL3_LAT > 1000: no C3");
            Assert.That(fadt[108], Is.EqualTo(0x32), "CENTURY");
            Assert.That(U16(fadt, 109) & 0b11, Is.EqualTo(0b11), "IAPC_BOOT_ARCH: LEGACY_DEVICES and 8042");
            var flags = U32(fadt, 112);
            Assert.That(flags & 1, Is.EqualTo(1), "WBINVD");
            Assert.That((flags >> 8) & 1, Is.EqualTo(1), "TMR_VAL_EXT: 32-bit PM timer");
            Assert.That((flags >> 10) & 1, Is.EqualTo(1), "RESET_REG_SUP");
            Assert.That((flags >> 20) & 1, Is.Zero, "not HW_REDUCED_ACPI");
            Assert.That(fadt[128], Is.EqualTo(0xFE), "RESET_VALUE");
            Assert.That(U64(fadt, 132), Is.AnyOf(0UL, tables.FacsAddress), "X_FIRMWARE_CTRL is absent or agrees with FIRMWARE_CTRL");
            Assert.That(U64(fadt, 140), Is.EqualTo(tables.DsdtAddress), "X_DSDT agrees with DSDT");
        });
        AssertPortGas(fadt, 116, 0x64, 8, "RESET_REG");
        AssertPortGas(fadt, 148, 0x600, 32, "X_PM1a_EVT_BLK");
        AssertPortGas(fadt, 172, 0x604, 16, "X_PM1a_CNT_BLK");
        AssertPortGas(fadt, 208, 0x608, 32, "X_PM_TMR_BLK");
        Assert.Multiple(() =>
        {
            foreach (var (offset, name) in new[] { (160, "X_PM1b_EVT_BLK"), (184, "X_PM1b_CNT_BLK"), (196, "X_PM2_CNT_BLK"), (220, "X_GPE0_BLK"), (232, "X_GPE1_BLK"), (244, "SLEEP_CONTROL_REG"), (256, "SLEEP_STATUS_REG") })
            {
                Assert.That(fadt.AsSpan(offset, 12).ToArray(), Is.All.Zero, $"{name} is absent");
            }
        });
    }

    [Test]
    public void FacsIsAlignedAndVersioned()
    {
        var tables = new AcpiTableBuilder(1).Build();
        var facs = At(tables, tables.FacsAddress, 64).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(tables.FacsAddress % 64, Is.Zero, "the FACS is 64-byte aligned");
            Assert.That(Ascii(facs, 0, 4), Is.EqualTo("FACS"));
            Assert.That(U32(facs, 4), Is.EqualTo(64), "length");
            Assert.That(U32(facs, 16), Is.Zero, "global lock free");
            Assert.That(facs[32], Is.EqualTo(2), "version");
        });
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(5)]
    public void DsdtDefinesS5WithThePowerOffSleepType(int sleepType)
    {
        var tables = new AcpiTableBuilder(1, s5SleepType: sleepType).Build();
        var dsdt = Table(tables, tables.DsdtAddress, "DSDT", 2);

        var names = new AmlReader(dsdt[36..]).ReadTermList();

        Assert.That(names.Keys, Is.EquivalentTo(new[] { "\\_S5_" }));
        var package = (List<ulong>)names["\\_S5_"];
        Assert.That(package, Has.Count.GreaterThanOrEqualTo(2));
        Assert.That(package[0], Is.EqualTo((ulong)sleepType), "SLP_TYPa");
        Assert.That(package[1], Is.EqualTo((ulong)sleepType), "SLP_TYPb");
    }

    [Test]
    public void DsdtS5DrivesPowerOff()
    {
        var stop = new VmStopSignal();
        var device = new PowerOff(stop, s5SleepType: 3);
        var tables = new AcpiTableBuilder(1, s5SleepType: device.S5SleepType).Build();
        var slpTyp = ((List<ulong>)new AmlReader(Table(tables, tables.DsdtAddress, "DSDT", 2)[36..]).ReadTermList()["\\_S5_"])[0];

        // What the OS does to enter S5: SLP_TYPa | SLP_EN into PM1a_CNT.
        device.WritePort(PowerOff.Port, 2, (uint)((slpTyp << 10) | (1 << 13)));

        Assert.That(stop.Request?.Reason, Is.EqualTo(VmStopReason.PowerOff));
    }

    [TestCase(1)]
    [TestCase(4)]
    [TestCase(255)]
    public void MadtListsEveryVcpuTheIoApicTheOverridesAndLint1Nmi(int cpus)
    {
        var tables = new AcpiTableBuilder(cpus).Build();
        var madt = Table(tables, tables.MadtAddress, "APIC", 4);
        Assert.That(U32(madt, 36), Is.EqualTo(0xFEE00000), "local APIC address");
        Assert.That(U32(madt, 40) & 1, Is.EqualTo(1), "PCAT_COMPAT: the 8259s are present");

        var entries = new List<byte[]>();
        for (var at = 44; at < madt.Length;)
        {
            var length = madt[at + 1];
            Assert.That(length, Is.GreaterThanOrEqualTo(2), $"entry at {at} has a length");
            Assert.That(at + length, Is.LessThanOrEqualTo(madt.Length), $"entry at {at} runs past the table");
            entries.Add(madt.AsSpan(at, length).ToArray());
            at += length;
        }

        var lapics = entries.Where(e => e[0] == 0).ToArray();
        var ioapics = entries.Where(e => e[0] == 1).ToArray();
        var overrides = entries.Where(e => e[0] == 2).ToArray();
        var nmis = entries.Where(e => e[0] == 4).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(entries.Select(e => e[0]), Is.All.AnyOf((byte)0, (byte)1, (byte)2, (byte)4));
            Assert.That(lapics.Select(e => e[1]), Is.All.EqualTo(8));
            Assert.That(lapics.Select(e => (int)e[3]), Is.EqualTo(Enumerable.Range(0, cpus)), "APIC id = vCPU index");
            Assert.That(lapics.Select(e => (int)e[2]), Is.Unique, "processor UIDs are unique");
            Assert.That(lapics.Select(e => e[2]), Has.None.EqualTo(0xFF), "UID 0xFF is the NMI entry's 'all processors'");
            Assert.That(lapics.Select(e => U32(e, 4) & 1), Is.All.EqualTo(1), "enabled");

            Assert.That(ioapics, Has.Length.EqualTo(1));
            Assert.That(ioapics[0][1], Is.EqualTo(12));
            Assert.That(ioapics[0][2], Is.EqualTo(IoApic.InitialId), "I/O APIC id as its register reads");
            Assert.That(U32(ioapics[0], 4), Is.EqualTo(0xFEC00000), "I/O APIC address");
            Assert.That(U32(ioapics[0], 8), Is.Zero, "GSI base");

            Assert.That(overrides.Select(e => e[1]), Is.All.EqualTo(10));
            Assert.That(overrides.Select(e => e[2]), Is.All.Zero, "bus ISA");
            var irq0 = overrides.Single(e => e[3] == 0);
            Assert.That(U32(irq0, 4), Is.EqualTo(2), "IRQ 0 -> GSI 2");
            Assert.That((U16(irq0, 8) >> 2) & 3, Is.AnyOf(0, 1), "IRQ 0 edge-triggered (or conforming to ISA: edge)");
            Assert.That(U16(irq0, 8) & 3, Is.AnyOf(0, 1), "IRQ 0 active high (or conforming to ISA: high)");
            var sci = overrides.Single(e => e[3] == 9);
            Assert.That(U32(sci, 4), Is.EqualTo(9), "SCI: IRQ 9 -> GSI 9");
            Assert.That((U16(sci, 8) >> 2) & 3, Is.EqualTo(3), "SCI level-triggered");
            Assert.That(U16(sci, 8) & 3, Is.EqualTo(1), "SCI active high");

            Assert.That(nmis, Has.Length.EqualTo(1));
            Assert.That(nmis[0][1], Is.EqualTo(6));
            Assert.That(nmis[0][2], Is.EqualTo(0xFF), "all processors");
            Assert.That(nmis[0][5], Is.EqualTo(1), "LINT1");
            Assert.That(U16(nmis[0], 3) & 0b1010, Is.Zero, "polarity and trigger are defined codes (not 10)");
        });
        Assert.That(IoApic.Pins, Is.GreaterThan(9), "the SCI's GSI is a pin of the I/O APIC");
    }

    [Test]
    public void TablesDoNotOverlapAndStayInTheBiosArea()
    {
        var tables = new AcpiTableBuilder(AcpiTableBuilder.MaxCpuCount).Build();
        var ranges = new[]
        {
            (tables.RsdpAddress, 36UL),
            (tables.XsdtAddress, (ulong)U32(At(tables, tables.XsdtAddress, 8), 4)),
            (tables.FacsAddress, 64UL),
            (tables.FadtAddress, (ulong)U32(At(tables, tables.FadtAddress, 8), 4)),
            (tables.DsdtAddress, (ulong)U32(At(tables, tables.DsdtAddress, 8), 4)),
            (tables.MadtAddress, (ulong)U32(At(tables, tables.MadtAddress, 8), 4)),
        }.OrderBy(r => r.Item1).ToArray();

        for (var i = 1; i < ranges.Length; i++)
        {
            Assert.That(ranges[i].Item1, Is.GreaterThanOrEqualTo(ranges[i - 1].Item1 + ranges[i - 1].Item2), $"table at 0x{ranges[i].Item1:x} overlaps the one before");
        }

        Assert.That(tables.EndAddress, Is.LessThanOrEqualTo(0x100000UL));
    }

    [TestCase(0)]
    [TestCase(256)]
    public void CpuCountOutsideTheMadtsRangeIsRefused(int cpus)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new AcpiTableBuilder(cpus))!;
        Assert.That(error.Message, Does.Contain(cpus.ToString(System.Globalization.CultureInfo.InvariantCulture)).And.Contain("255"));
    }

    [Test]
    public void UnalignedBaseIsRefused()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new AcpiTableBuilder(1).Build(0xE0008))!;
        Assert.That(error.Message, Does.Contain("0xe0008").And.Contain("16-byte"));
    }
}
