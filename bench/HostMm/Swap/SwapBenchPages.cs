using System.Text;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>Fills buffers with <see cref="SwapBenchData"/> contents, deterministically.</summary>
internal static class SwapBenchPages
{
    public const int PageSize = 4096;

    public static byte[] Make(SwapBenchData kind, int pages, int seed = 1)
    {
        var buffer = new byte[pages * PageSize];
        switch (kind)
        {
            case SwapBenchData.Memtest:
                var random = new Random(seed);
                var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(buffer.AsSpan());
                for (var i = 0; i < words.Length; i++)
                {
                    words[i] = (ulong)random.NextInt64();
                }

                break;
            case SwapBenchData.Text:
                string[] vocabulary = ["swap", "slot", "cluster", "page", "guest", "host", "reclaim", "the", "of", "memory", "notifier", "frame", "fault"];
                var text = new StringBuilder(buffer.Length + 32);
                var rng = new Random(seed);
                while (text.Length < buffer.Length)
                {
                    text.Append(vocabulary[rng.Next(vocabulary.Length)]).Append(' ');
                    if (rng.Next(6) == 0)
                    {
                        text.Append(rng.Next(100_000)).Append(".\n");
                    }
                }

                Encoding.ASCII.GetBytes(text.ToString(0, buffer.Length), buffer);
                break;
            case SwapBenchData.Zero:
                break;
        }

        return buffer;
    }
}
