using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>The argument rules every <see cref="ISwapDevice"/> enforces: data slots inside the device, whole pages.</summary>
internal static class SwapDeviceGuard
{
    /// <summary>Checks one page transfer at <paramref name="slot"/>.</summary>
    public static void CheckPage(ISwapDevice device, ulong slot, int length)
    {
        if (length != (int)Paging.PageSize)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"page buffer of {length} bytes for swap slot 0x{slot:x}: a swap page is exactly {Paging.PageSize} bytes"),
                "page");
        }

        CheckSlots(device, slot, 1);
    }

    /// <summary>Checks a run transfer at <paramref name="firstSlot"/> over <paramref name="length"/> bytes; returns the page count.</summary>
    public static int CheckRun(ISwapDevice device, ulong firstSlot, int length)
    {
        if (length <= 0 || length % (int)Paging.PageSize != 0)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"run buffer of {length} bytes at swap slot 0x{firstSlot:x}: a run is a positive multiple of {Paging.PageSize} bytes"),
                "pages");
        }

        var count = length / (int)Paging.PageSize;
        CheckSlots(device, firstSlot, count);
        return count;
    }

    /// <summary>Checks that <c>[firstSlot, firstSlot + count)</c> are data slots of <paramref name="device"/>.</summary>
    public static void CheckSlots(ISwapDevice device, ulong firstSlot, int count)
    {
        var max = device.SlotCount;
        if (count <= 0 || firstSlot == 0 || firstSlot >= max || (ulong)count > max - firstSlot)
        {
            throw new ArgumentOutOfRangeException(
                nameof(firstSlot), firstSlot,
                string.Create(CultureInfo.InvariantCulture, $"swap slots [0x{firstSlot:x}, +{count}) are outside {device.Name}: data slots are 1 to 0x{max - 1:x} (slot 0 is the header) and a run has at least one slot"));
        }
    }
}
