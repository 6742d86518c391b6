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
