namespace Hypervisor.Vmm.Boot;

/// <summary>Builds 8-byte GDT descriptors the way Firecracker's and crosvm's <c>gdt_entry</c> does.</summary>
public static class GdtEntry
{
    /// <summary>
    /// Packs a descriptor: <paramref name="flags"/> is the access byte in bits 0–7 and the G/DB/L/AVL nibble
    /// in bits 12–15 (0xA09B = 64-bit code, 0xC093 = flat data, 0x808B = busy TSS).
    /// </summary>
    /// <param name="flags">Access byte and flag nibble.</param>
    /// <param name="baseAddress">32-bit base.</param>
    /// <param name="limit">20-bit limit (higher bits are dropped).</param>
    public static ulong Create(ushort flags, uint baseAddress, uint limit) =>
        (((ulong)baseAddress & 0xFF00_0000) << 32)
        | (((ulong)baseAddress & 0x00FF_0000) << 16)
        | (((ulong)baseAddress & 0x0000_FFFF) << 16)
        | (((ulong)limit & 0x000F_0000) << 32)
        | ((ulong)limit & 0x0000_FFFF)
        | (((ulong)flags & 0xF0FF) << 40);
}
