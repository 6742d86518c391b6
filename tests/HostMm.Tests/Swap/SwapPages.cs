using System.Text;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>Page contents for swap tests: random (memtest-like), zero, same-filled, text-like, and their kinds.</summary>
internal static class SwapPages
{
    public const int Size = 4096;

    public static byte[] Make(SwapPageKind kind, int seed)
    {
        var page = new byte[Size];
        Fill(page, kind, seed);
        return page;
    }

    public static void Fill(Span<byte> page, SwapPageKind kind, int seed)
    {
        switch (kind)
        {
            case SwapPageKind.Random:
                new Random(seed).NextBytes(page);
                break;
            case SwapPageKind.Zero:
                page.Clear();
                break;
            case SwapPageKind.SameFilled:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page).Fill(0x0101_0101_0000_0000UL * (ulong)(seed + 1) + 0x5A);
                break;
            case SwapPageKind.Text:
                FillText(page, seed);
                break;
        }
    }

    /// <summary>Several pages, each of a kind chosen by the seed, in one buffer.</summary>
    public static byte[] MakeRun(int pages, int seed)
    {
        var buffer = new byte[pages * Size];
        var random = new Random(seed);
        for (var i = 0; i < pages; i++)
        {
            Fill(buffer.AsSpan(i * Size, Size), (SwapPageKind)random.Next(4), random.Next());
        }

        return buffer;
    }

    private static void FillText(Span<byte> page, int seed)
    {
        string[] words = ["swap", "slot", "cluster", "page", "guest", "host", "reclaim", "the", "of", "memory", "notifier", "frame"];
        var random = new Random(seed);
        var text = new StringBuilder();
        while (text.Length < Size)
        {
            text.Append(words[random.Next(words.Length)]).Append(random.Next(8) == 0 ? ".\n" : " ");
        }

        Encoding.ASCII.GetBytes(text.ToString(0, Size), page);
    }
}
