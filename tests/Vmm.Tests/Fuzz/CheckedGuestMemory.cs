using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// Guest RAM of any size that stores nothing (reads return zeros), so that the fuzzer can boot into gigabytes at no
/// cost. It checks the loader's contract instead: every access lies in <c>[0, Size)</c>, and once the image is
/// <see cref="Protect">protected</see>, no write (boot data, initrd) touches its segments.
/// </summary>
internal sealed class CheckedGuestMemory(ulong size) : IGuestPhysicalMemory
{
    private LoadedImage? _image;

    /// <inheritdoc />
    public ulong Size { get; } = size;

    /// <summary>Bytes written.</summary>
    public ulong BytesWritten { get; private set; }

    /// <summary>From now on a write that overlaps <paramref name="image"/>'s segments is a violation.</summary>
    public void Protect(LoadedImage image) => _image = image;

    /// <inheritdoc />
    public void Write(ulong gpa, ReadOnlySpan<byte> data)
    {
        Check(gpa, data.Length, "write");
        var end = gpa + (ulong)data.Length;
        if (_image is not null && data.Length > 0 && _image.Overlaps(gpa, end))
        {
            throw new GuestMemoryViolationException($"boot data write [0x{gpa:x}, 0x{end:x}) overlaps the loaded image [0x{_image.LowestGpa:x}, 0x{_image.EndGpa:x})");
        }

        BytesWritten += (ulong)data.Length;
    }

    /// <inheritdoc />
    public void Read(ulong gpa, Span<byte> data)
    {
        Check(gpa, data.Length, "read");
        data.Clear();
    }

    private void Check(ulong gpa, int length, string access)
    {
        if (gpa > Size || (ulong)length > Size - gpa)
        {
            throw new GuestMemoryViolationException($"{access} [0x{gpa:x}, +0x{length:x}) lies outside guest RAM of 0x{Size:x} bytes");
        }
    }
}
