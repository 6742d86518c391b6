using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>The one size syntax of every size option: a bare number is MiB, units are binary, and formatting round-trips.</summary>
public sealed class ByteSizeTests
{
    [TestCase("512", 512UL << 20)]
    [TestCase("0", 0UL)]
    [TestCase("4096B", 4096UL)]
    [TestCase("1b", 1UL)]
    [TestCase("4K", 4096UL)]
    [TestCase("4k", 4096UL)]
    [TestCase("4KB", 4096UL)]
    [TestCase("4KiB", 4096UL)]
    [TestCase("128M", 128UL << 20)]
    [TestCase("128mib", 128UL << 20)]
    [TestCase("3G", 3UL << 30)]
    [TestCase("2GB", 2UL << 30)]
    [TestCase("1T", 1UL << 40)]
    [TestCase(" 64M ", 64UL << 20)]
    [TestCase("18446744073709551615B", ulong.MaxValue)]
    public void ReadsTheSizeSyntax(string text, ulong bytes)
    {
        Assert.Multiple(() =>
        {
            Assert.That(ByteSize.TryParse(text, out var size), Is.True, text);
            Assert.That(size.Bytes, Is.EqualTo(bytes), text);
        });
    }

    [TestCase("")]
    [TestCase("   ")]
    [TestCase(null)]
    [TestCase("M")]
    [TestCase("-1")]
    [TestCase("+1")]
    [TestCase("1.5G")]
    [TestCase("1,000")]
    [TestCase("0x100")]
    [TestCase("3X")]
    [TestCase("1 M")]
    [TestCase("17179869184G")]
    [TestCase("18446744073709551616B")]
    public void RejectsWhatIsNotASize(string? text)
    {
        Assert.That(ByteSize.TryParse(text, out _), Is.False, text);
    }

    [TestCase(0UL, "0")]
    [TestCase(1UL, "1B")]
    [TestCase(1000UL, "1000B")]
    [TestCase(4096UL, "4K")]
    [TestCase(2UL << 20, "2M")]
    [TestCase((2UL << 20) + 4096, "2052K")]
    [TestCase(128UL << 20, "128M")]
    [TestCase(1536UL << 20, "1536M")]
    [TestCase(3UL << 30, "3G")]
    [TestCase(64UL << 30, "64G")]
    [TestCase(2UL << 40, "2T")]
    public void WritesTheLargestUnitThatDividesTheSize(ulong bytes, string text)
    {
        Assert.That(ByteSize.Format(bytes), Is.EqualTo(text));
    }

    [Test]
    public void EveryFormattedSizeReadsBackAsTheSameSize([Values(1, 2, 3)] int seed)
    {
        // Random counts aligned to 1 B .. 1 TiB, so every unit Format picks is exercised.
        var random = new Random(seed);
        var failures = new List<string>();
        for (var i = 0; i < 10_000; i++)
        {
            var bytes = (ulong)random.NextInt64() << 1 ^ (ulong)random.Next(2);
            var aligned = bytes & ~((1UL << random.Next(0, 41)) - 1);
            var text = ByteSize.Format(aligned);
            if (!ByteSize.TryParse(text, out var back) || back.Bytes != aligned || new ByteSize(aligned).ToString() != text)
            {
                failures.Add($"{aligned} -> '{text}' -> {back.Bytes}");
            }
        }

        Assert.That(failures, Is.Empty);
    }
}
