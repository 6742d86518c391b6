namespace Hypervisor.Vmm.Boot;

/// <summary>The guest's E820-style memory map, as the boot protocols report it (Firecracker layout).</summary>
public static class GuestMemoryMap
{
    /// <summary>Start of the extended BIOS data area; conventional RAM ends here (639 KiB).</summary>
    public const ulong EbdaStart = 0x9FC00;

    /// <summary>Start of high memory (1 MiB).</summary>
    public const ulong HighMemoryStart = 0x10_0000;

    /// <summary>
    /// Usable RAM for a machine with <paramref name="ramSize"/> bytes: <c>[0, 0x9FC00)</c> and
    /// <c>[1 MiB, ramSize)</c>, each clipped to RAM; the hole between them is left out.
    /// </summary>
    /// <param name="ramSize">Bytes of guest RAM.</param>
    public static E820Entry[] Build(ulong ramSize)
    {
        var entries = new List<E820Entry>(2);
        var low = Math.Min(ramSize, EbdaStart);
        if (low > 0)
        {
            entries.Add(new E820Entry(0, low, E820Type.Ram));
        }

        if (ramSize > HighMemoryStart)
        {
            entries.Add(new E820Entry(HighMemoryStart, ramSize - HighMemoryStart, E820Type.Ram));
        }

        return [.. entries];
    }
}
