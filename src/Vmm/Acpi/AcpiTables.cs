namespace Hypervisor.Vmm.Acpi;

/// <summary>
/// One VM's ACPI tables laid out for guest-physical <see cref="BaseAddress"/>: the bytes to copy there and where each
/// table starts. Built by <see cref="AcpiTableBuilder"/>.
/// </summary>
public sealed class AcpiTables
{
    internal AcpiTables(ulong baseAddress, byte[] image, ulong rsdp, ulong xsdt, ulong facs, ulong fadt, ulong dsdt, ulong madt)
    {
        BaseAddress = baseAddress;
        Image = image;
        RsdpAddress = rsdp;
        XsdtAddress = xsdt;
        FacsAddress = facs;
        FadtAddress = fadt;
        DsdtAddress = dsdt;
        MadtAddress = madt;
    }

    /// <summary>The guest-physical address of <see cref="Image"/>'s first byte.</summary>
    public ulong BaseAddress { get; }

    /// <summary>Every table, at its offset from <see cref="BaseAddress"/> (gaps are zero).</summary>
    public ReadOnlyMemory<byte> Image { get; }

    /// <summary>The RSDP (16-byte aligned).</summary>
    public ulong RsdpAddress { get; }

    /// <summary>The XSDT.</summary>
    public ulong XsdtAddress { get; }

    /// <summary>The FACS (64-byte aligned).</summary>
    public ulong FacsAddress { get; }

    /// <summary>The FADT ("FACP").</summary>
    public ulong FadtAddress { get; }

    /// <summary>The DSDT.</summary>
    public ulong DsdtAddress { get; }

    /// <summary>The MADT ("APIC").</summary>
    public ulong MadtAddress { get; }

    /// <summary>The first guest-physical address after the tables.</summary>
    public ulong EndAddress => BaseAddress + (ulong)Image.Length;
}
