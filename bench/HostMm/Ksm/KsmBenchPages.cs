namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// Page contents for the KSM benchmarks, the same on the simulated host and the real kernel: a page's 4 KiB are a
/// SplitMix64 stream seeded by its index, so pages with different indices differ in their first 8 bytes (a tree
/// comparison stops there) and no page is zero.
/// </summary>
internal static class KsmBenchPages
{
    public const int PageSize = 4096;

    /// <summary>Fills <paramref name="page"/> (4 KiB) with page <paramref name="index"/>'s contents.</summary>
    public static void Fill(Span<byte> page, long index)
    {
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page[..PageSize]);
        var state = (ulong)index * 0x9E37_79B9_7F4A_7C15UL;
        for (var i = 0; i < words.Length; i++)
        {
            state += 0x9E37_79B9_7F4A_7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
            words[i] = (z ^ (z >> 31)) | 1; // never a zero word, so never a zero page
        }
    }
}
