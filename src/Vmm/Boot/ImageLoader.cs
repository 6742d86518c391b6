namespace Hypervisor.Vmm.Boot;

/// <summary>Places a validated <see cref="ElfImage"/> in guest-physical memory.</summary>
public static class ImageLoader
{
    private const int ZeroChunk = 64 * 1024;

    /// <summary>
    /// Writes every segment of <paramref name="image"/>'s <see cref="ElfImage.LoadPlan"/> at its physical
    /// address and zero-fills its bss. Nothing is written unless every segment fits in RAM.
    /// </summary>
    /// <param name="image">The image.</param>
    /// <param name="memory">Guest RAM.</param>
    /// <returns>The segments, entry points and the extent written.</returns>
    /// <exception cref="BootImageException">A segment falls outside guest RAM.</exception>
    public static LoadedImage Load(ElfImage image, IGuestPhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(memory);
        foreach (var segment in image.LoadPlan)
        {
            if (segment.PhysicalEnd > memory.Size)
            {
                throw new BootImageException(
                    BootImageRule.OutsideGuestRam,
                    $"{segment} lies outside guest RAM of 0x{memory.Size:x} bytes ({memory.Size / (1024 * 1024)} MiB): segments must end at or below the RAM size");
            }
        }

        var zeros = new byte[ZeroChunk];
        var lowest = ulong.MaxValue;
        var end = 0UL;
        foreach (var segment in image.LoadPlan)
        {
            memory.Write(segment.PhysicalAddress, image.GetFileData(segment));
            var gpa = segment.PhysicalAddress + segment.FileSize;
            while (gpa < segment.PhysicalEnd)
            {
                var count = (int)Math.Min((ulong)zeros.Length, segment.PhysicalEnd - gpa);
                memory.Write(gpa, zeros.AsSpan(0, count));
                gpa += (ulong)count;
            }

            lowest = Math.Min(lowest, segment.PhysicalAddress);
            end = Math.Max(end, segment.PhysicalEnd);
        }

        return new LoadedImage(image.LoadPlan, image.Is64Bit, image.Entry, image.PvhEntry, image.MultibootEntry, lowest, end);
    }
}
