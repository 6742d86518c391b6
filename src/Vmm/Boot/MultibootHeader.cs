namespace Hypervisor.Vmm.Boot;

/// <summary>A multiboot v1 header found in the first 8 KiB of an image.</summary>
/// <param name="FileOffset">File offset of the magic (4-byte aligned).</param>
/// <param name="Flags">The header's flags; bits 0–15 are requirements, bit 16 says the address fields are valid.</param>
/// <param name="HeaderAddress">header_addr (meaningful only with <see cref="HasAddressFields"/>).</param>
/// <param name="LoadAddress">load_addr (meaningful only with <see cref="HasAddressFields"/>).</param>
/// <param name="LoadEndAddress">load_end_addr, 0 for "to the end of the file".</param>
/// <param name="BssEndAddress">bss_end_addr, 0 for "no bss".</param>
/// <param name="EntryAddress">entry_addr (meaningful only with <see cref="HasAddressFields"/>).</param>
public readonly record struct MultibootHeader(
    int FileOffset,
    uint Flags,
    uint HeaderAddress,
    uint LoadAddress,
    uint LoadEndAddress,
    uint BssEndAddress,
    uint EntryAddress)
{
    /// <summary>The header's magic number, 0x1BADB002.</summary>
    public const uint Magic = 0x1BADB002;

    /// <summary>Flag bit 16: the address fields are valid and override the ELF program headers.</summary>
    public const uint AddressFieldsFlag = 1u << 16;

    /// <summary>The requirement bits this loader honours: 0 (page-align modules), 1 (memory info), 2 (video, ignored as QEMU does).</summary>
    public const uint SupportedRequirements = 0x7;

    /// <summary>True when flag bit 16 is set, so the loader uses the address fields instead of the ELF headers.</summary>
    public bool HasAddressFields => (Flags & AddressFieldsFlag) != 0;
}
