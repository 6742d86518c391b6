using System.Runtime.Intrinsics.X86;
using System.Text;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class Crc32CTests
{
    private static readonly byte[] _checkInput = Encoding.ASCII.GetBytes("123456789");

    [Test]
    public void Software_GivesTheStandardCheckValue()
    {
        Assert.That(Crc32C.ComputeSoftware(_checkInput), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.ComputeSoftware(ReadOnlySpan<byte>.Empty), Is.Zero);
    }

    [Test]
    public void Hardware_GivesTheStandardCheckValue()
    {
        RequireSse42();
        Assert.That(Crc32C.ComputeHardware(_checkInput), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.ComputeHardware(ReadOnlySpan<byte>.Empty), Is.Zero);
    }

    [Test]
    public void Compute_UsesTheHardwarePathWhereTheCpuHasIt()
    {
        Assert.That(Crc32C.IsHardwareAccelerated, Is.EqualTo(Sse42.X64.IsSupported));
        Assert.That(Crc32C.Compute(_checkInput), Is.EqualTo(0xE3069283u));
    }

    [Test]
    public void BothPaths_AgreeOnRandomDataOfEveryTailLength()
    {
        RequireSse42();
        var random = new Random(20240611);
        var lengths = Enumerable.Range(0, 40).Concat([4095, 4096, 4097, 65536]);
        foreach (var length in lengths)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.That(
                Crc32C.ComputeHardware(data),
                Is.EqualTo(Crc32C.ComputeSoftware(data)),
                $"length {length}");
        }
    }

    [Test]
    public void Interleaved_AgreesWithTheTableOnEveryLengthAndAlignmentItUses()
    {
        if (!Crc32C.IsInterleaved)
        {
            Assert.Ignore("this CPU lacks SSE4.2 or PCLMULQDQ; the interleaved path cannot run here");
        }

        Assert.That(Crc32C.ComputeInterleaved(_checkInput), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.ComputeInterleaved(ReadOnlySpan<byte>.Empty), Is.Zero);
        var random = new Random(20261205);
        var buffer = new byte[(3 * 4096) + 64];
        random.NextBytes(buffer);

        // Every length around the short (3 × 128) and long (3 × 1360) round boundaries and their multiples, a page, a
        // few pages, at every offset within a word.
        var lengths = Enumerable.Range(0, 400)
            .Concat(Enumerable.Range(760, 16)).Concat(Enumerable.Range(4070, 32)).Concat(Enumerable.Range(8150, 20))
            .Concat([1152, 4096, 8192, 3 * 4096]);
        foreach (var length in lengths)
        {
            for (var offset = 0; offset < 8; offset++)
            {
                var data = buffer.AsSpan(offset, Math.Min(length, buffer.Length - offset));
                Assert.That(Crc32C.ComputeInterleaved(data), Is.EqualTo(Crc32C.ComputeSoftware(data)), $"length {data.Length}, offset {offset}");
            }
        }
    }

    [Test]
    public void Interleaved_AgreesWithTheTableOnPagesOfEveryKind()
    {
        if (!Crc32C.IsInterleaved)
        {
            Assert.Ignore("this CPU lacks SSE4.2 or PCLMULQDQ; the interleaved path cannot run here");
        }

        var random = new Random(11);
        var page = new byte[4096];
        for (var round = 0; round < 200; round++)
        {
            switch (round % 4)
            {
                case 0:
                    random.NextBytes(page);
                    break;
                case 1:
                    page.AsSpan().Fill((byte)round);
                    break;
                case 2:
                    page.AsSpan().Clear();
                    page[random.Next(page.Length)] = 1; // one set bit anywhere: every chain's shift is exercised
                    break;
                default:
                    page.AsSpan().Fill(0xFF);
                    page[random.Next(page.Length)] ^= (byte)(1 << random.Next(8));
                    break;
            }

            Assert.That(Crc32C.ComputeInterleaved(page), Is.EqualTo(Crc32C.ComputeSoftware(page)), $"round {round}");
            Assert.That(Crc32C.Compute(page), Is.EqualTo(Crc32C.ComputeSoftware(page)), $"round {round}");
        }
    }

    /// <summary>Every path, so each is reported on its own (ignored with the reason where the CPU lacks it).</summary>
    private static readonly Crc32CPath[] _paths = Enum.GetValues<Crc32CPath>();

    [TestCaseSource(nameof(_paths))]
    public void EveryPath_GivesTheKnownCheckValues(Crc32CPath path)
    {
        RequirePath(path);
        Assert.Multiple(() =>
        {
            // RFC 3720 B.4 and the common "123456789" check value.
            Assert.That(Crc32C.Compute(path, _checkInput), Is.EqualTo(0xE3069283u), "\"123456789\"");
            Assert.That(Crc32C.Compute(path, ReadOnlySpan<byte>.Empty), Is.Zero, "empty");
            Assert.That(Crc32C.Compute(path, new byte[32]), Is.EqualTo(0x8A9136AAu), "32 zero bytes");
            Assert.That(Crc32C.Compute(path, Enumerable.Repeat((byte)0xFF, 32).ToArray()), Is.EqualTo(0x62A8AB43u), "32 0xFF bytes");
            Assert.That(Crc32C.Compute(path, Enumerable.Range(0, 32).Select(b => (byte)b).ToArray()), Is.EqualTo(0x46DD794Eu), "0..31");
            Assert.That(Crc32C.Compute(path, Enumerable.Range(0, 32).Select(b => (byte)(31 - b)).ToArray()), Is.EqualTo(0x113FDB5Cu), "31..0");

            // A page of zeros and a page of 0xFF: long enough for every folding width's main loop.
            Assert.That(Crc32C.Compute(path, new byte[4096]), Is.EqualTo(Crc32C.ComputeSoftware(new byte[4096])), "zero page");
        });
    }

    [TestCaseSource(nameof(_paths))]
    public void EveryPath_AgreesWithTheTable_OnRandomLengthsAndUnalignedStarts(Crc32CPath path)
    {
        RequirePath(path);
        var random = new Random(20261206);
        var buffer = new byte[10000 + 64];
        random.NextBytes(buffer);
        for (var round = 0; round < 600; round++)
        {
            var length = random.Next(0, 10001);
            var offset = random.Next(0, 64);
            var data = buffer.AsSpan(offset, length);
            Assert.That(Crc32C.Compute(path, data), Is.EqualTo(Crc32C.ComputeSoftware(data)), $"length {length}, offset {offset}");
        }

        // Every length around the folding steps (128 and 256 bytes) and the 16-byte chunks after them, at odd offsets.
        foreach (var length in Enumerable.Range(0, 600).Concat(Enumerable.Range(4060, 60)))
        {
            var offset = length % 13;
            var data = buffer.AsSpan(offset, length);
            Assert.That(Crc32C.Compute(path, data), Is.EqualTo(Crc32C.ComputeSoftware(data)), $"length {length}, offset {offset}");
        }
    }

    [TestCaseSource(nameof(_paths))]
    public void EveryPath_SeesEverySingleBitFlipOfAPage(Crc32CPath path)
    {
        RequirePath(path);
        var page = new byte[4096];
        new Random(5).NextBytes(page);
        var clean = Crc32C.Compute(path, page);

        // One flipped bit in every 16-byte lane of the page: the fold constants of every lane are exercised.
        for (var lane = 0; lane < 4096 / 16; lane++)
        {
            var bit = (lane * 16 * 8) + (lane % 128);
            page[bit >> 3] ^= (byte)(1 << (bit & 7));
            Assert.That(Crc32C.Compute(path, page), Is.EqualTo(Crc32C.ComputeSoftware(page)).And.Not.EqualTo(clean), $"bit {bit}");
            page[bit >> 3] ^= (byte)(1 << (bit & 7));
        }
    }

    [Test]
    public void Path_IsTheFastestSupported_AndComputeTakesIt()
    {
        var expected = Crc32C.IsSupported(Crc32CPath.Fold512) ? Crc32CPath.Fold512
            : Crc32C.IsSupported(Crc32CPath.Fold256) ? Crc32CPath.Fold256
            : Crc32C.IsSupported(Crc32CPath.Sse42Interleaved) ? Crc32CPath.Sse42Interleaved
            : Crc32C.IsSupported(Crc32CPath.Sse42) ? Crc32CPath.Sse42
            : Crc32CPath.Table;
        Assert.Multiple(() =>
        {
            Assert.That(Crc32C.Path, Is.EqualTo(expected));
            Assert.That(Crc32C.IsSupported(Crc32CPath.Table), Is.True);
            Assert.That(Crc32C.IsSupported(Crc32CPath.Fold512), Is.EqualTo(Pclmulqdq.V512.IsSupported && Crc32C.IsInterleaved));
            Assert.That(Crc32C.IsSupported(Crc32CPath.Fold256), Is.EqualTo(Pclmulqdq.V256.IsSupported && Crc32C.IsInterleaved));
        });
    }

    [Test]
    public void UnsupportedOrUnknownPath_IsRefusedNamingIt()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Crc32C.Compute((Crc32CPath)99, _checkInput));
        Assert.That(ex!.Message, Does.Contain("99"));
        var missing = Enum.GetValues<Crc32CPath>().Where(p => !Crc32C.IsSupported(p)).ToArray();
        foreach (var path in missing)
        {
            Assert.Throws<PlatformNotSupportedException>(() => Crc32C.Compute(path, _checkInput), path.ToString());
        }
    }

    [Test]
    public void Checksum_OfAFrameIsTheCrcOfItsBytesAndSeesOneBitFlip()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        new Random(7).NextBytes(memory.FrameBytes(pfn));
        var before = memory.Checksum(pfn);
        Assert.That(before, Is.EqualTo(Crc32C.ComputeSoftware(memory.FrameBytes(pfn))));
        memory.FrameBytes(pfn)[2049] ^= 0x10;
        Assert.That(memory.Checksum(pfn), Is.Not.EqualTo(before));
    }

    private static void RequirePath(Crc32CPath path)
    {
        if (!Crc32C.IsSupported(path))
        {
            Assert.Ignore(path switch
            {
                Crc32CPath.Fold512 => "this CPU or runtime lacks VPCLMULQDQ on 512-bit vectors (Pclmulqdq.V512.IsSupported is false); the 512-bit folding path cannot run here",
                Crc32CPath.Fold256 => "this CPU or runtime lacks VPCLMULQDQ on 256-bit vectors (Pclmulqdq.V256.IsSupported is false); the 256-bit folding path cannot run here",
                Crc32CPath.Sse42Interleaved => "this CPU lacks SSE4.2 or PCLMULQDQ; the interleaved path cannot run here",
                _ => "this CPU has no SSE4.2 crc32 instruction; the hardware path cannot run here",
            });
        }
    }

    private static void RequireSse42()
    {
        if (!Sse42.X64.IsSupported)
        {
            Assert.Ignore("this CPU has no SSE4.2 crc32 instruction; the hardware path cannot run here");
        }
    }
}
