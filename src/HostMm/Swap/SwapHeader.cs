using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// Slot 0 of a swap file, in the layout of Linux's <c>union swap_header</c> (version 1): <c>version</c> at 1024,
/// <c>last_page</c> at 1028, <c>nr_badpages</c> at 1032, the volume name at 1052 and the magic <c>SWAPSPACE2</c> in
/// the page's last 10 bytes. It marks a file as ours, so an existing file is only ever reused when it carries it.
/// </summary>
internal static class SwapHeader
{
    private const int VersionOffset = 1024;
    private const int LastPageOffset = 1028;
    private const int VolumeOffset = 1052;
    private static readonly byte[] _magic = Encoding.ASCII.GetBytes("SWAPSPACE2");
    private static readonly byte[] _volume = Encoding.ASCII.GetBytes("hypervisor");

    /// <summary>Fills <paramref name="page"/> with the header of a device of <paramref name="slotCount"/> slots.</summary>
    public static void Build(Span<byte> page, ulong slotCount)
    {
        page.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(page[VersionOffset..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(page[LastPageOffset..], (uint)(slotCount - 1));
        _volume.CopyTo(page[VolumeOffset..]);
        _magic.CopyTo(page[^_magic.Length..]);
    }

    /// <summary>True when <paramref name="page"/> ends with the swap magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> page) => page.Length == (int)Paging.PageSize && page[^_magic.Length..].SequenceEqual(_magic);
}
