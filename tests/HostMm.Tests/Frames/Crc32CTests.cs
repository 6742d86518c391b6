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

    private static void RequireSse42()
    {
        if (!Sse42.X64.IsSupported)
        {
            Assert.Ignore("this CPU has no SSE4.2 crc32 instruction; the hardware path cannot run here");
        }
    }
}
