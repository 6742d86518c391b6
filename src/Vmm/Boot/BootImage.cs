namespace Hypervisor.Vmm.Boot;

/// <summary>Recognises a guest image file by its magic: ELF, or a Linux bzImage.</summary>
public static class BootImage
{
    /// <summary>Parses <paramref name="file"/> as an ELF image (0x7F 'E' 'L' 'F') or a bzImage ("HdrS" at 0x202).</summary>
    /// <param name="file">The whole image file.</param>
    /// <returns>The validated image.</returns>
    /// <exception cref="BootImageException">The file is neither, or breaks a rule of its format.</exception>
    public static IBootImage Parse(ReadOnlySpan<byte> file)
    {
        if (file.Length >= 4 && file[0] == 0x7F && file[1] == (byte)'E' && file[2] == (byte)'L' && file[3] == (byte)'F')
        {
            return ElfImage.Parse(file);
        }

        if (file.Length >= LinuxSetupHeader.MagicOffset + 4 && file[LinuxSetupHeader.MagicOffset..].StartsWith("HdrS"u8))
        {
            return BzImage.Parse(file);
        }

        var head = Convert.ToHexString(file[..Math.Min(4, file.Length)]);
        throw new BootImageException(
            BootImageRule.BadMagic,
            $"image of {file.Length} bytes starting 0x{head} is neither ELF nor a Linux bzImage: it must start with 0x7f 'E' 'L' 'F' or have \"HdrS\" at 0x{LinuxSetupHeader.MagicOffset:x}");
    }
}
