using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

public sealed class ZramSwapDeviceTests
{
    private const ulong Slots = 4096;

    [Test]
    public void SameFilledPage_IsStoredAsItsValue_WithNoMemory()
    {
        using var zram = new ZramSwapDevice(Slots * 4096);
        zram.Write(1, SwapPages.Make(SwapPageKind.SameFilled, 4));
        zram.Write(2, SwapPages.Make(SwapPageKind.Zero, 0));
        var stats = zram.GetZramStats();
        Assert.Multiple(() =>
        {
            Assert.That(stats.PagesStored, Is.EqualTo(2));
            Assert.That(stats.SameFilledPages, Is.EqualTo(2));
            Assert.That(stats.CompressedBytes, Is.Zero);
            Assert.That(stats.MemoryUsedBytes, Is.Zero);
            Assert.That(stats.OriginalBytes, Is.EqualTo(2 * 4096));
            Assert.That(stats.CompressionRatio, Is.EqualTo(2 * 4096 / 16.0));
            Assert.That(zram.IsSynchronous, Is.True);
        });
    }

    [Test]
    public void IncompressiblePage_IsStoredRaw()
    {
        using var zram = new ZramSwapDevice(Slots * 4096);
        zram.Write(1, SwapPages.Make(SwapPageKind.Random, 5));
        var stats = zram.GetZramStats();
        Assert.Multiple(() =>
        {
            Assert.That(stats.IncompressiblePages, Is.EqualTo(1));
            Assert.That(stats.CompressedBytes, Is.EqualTo(4096));
            Assert.That(stats.CompressionRatio, Is.EqualTo(1.0));
            Assert.That(stats.MemoryUsedBytes, Is.EqualTo(64 * 1024), "one chunk of the raw size class");
        });
    }

    [Test]
    public void TextPages_CompressBelowTheThreshold()
    {
        using var zram = new ZramSwapDevice(Slots * 4096);
        for (var i = 1; i <= 100; i++)
        {
            zram.Write((ulong)i, SwapPages.Make(SwapPageKind.Text, i));
        }

        var stats = zram.GetZramStats();
        Assert.Multiple(() =>
        {
            Assert.That(stats.IncompressiblePages, Is.Zero);
            Assert.That(stats.CompressedBytes, Is.LessThan(100 * ZramSwapDevice.DefaultIncompressibleThreshold));
            Assert.That(stats.CompressionRatio, Is.GreaterThan(1.5));
            Assert.That(stats.MemoryUsedBytes, Is.LessThan(100 * 4096));
        });
    }

    [Test]
    public void Threshold_DecidesBetweenCompressedAndRaw()
    {
        var text = SwapPages.Make(SwapPageKind.Text, 9);
        using var strict = new ZramSwapDevice(Slots * 4096, incompressibleThreshold: 64);
        strict.Write(1, text);
        Assert.That(strict.GetZramStats().IncompressiblePages, Is.EqualTo(1), "text does not compress below 64 bytes");
        var read = new byte[4096];
        strict.Read(1, read);
        Assert.That(read, Is.EqualTo(text));
    }

    [Test]
    public void DiscardAndOverwrite_FreeTheStoredBytes_AndMemoryReturnsToZero()
    {
        using var zram = new ZramSwapDevice(Slots * 4096);
        for (var i = 1; i < 2000; i++)
        {
            zram.Write((ulong)i, SwapPages.Make(i % 2 == 0 ? SwapPageKind.Text : SwapPageKind.Random, i));
        }

        var full = zram.GetZramStats();
        Assert.That(full.MemoryUsedBytes, Is.GreaterThan(1000 * 4096));

        for (var i = 1; i < 2000; i += 2)
        {
            zram.Write((ulong)i, SwapPages.Make(SwapPageKind.Zero, 0)); // raw pages overwritten by zero pages
        }

        var half = zram.GetZramStats();
        Assert.That(half.MemoryUsedBytes, Is.LessThan(full.MemoryUsedBytes / 2));
        Assert.That(half.SameFilledPages, Is.EqualTo(1000));

        zram.Discard(1, 1999);
        var empty = zram.GetZramStats();
        Assert.Multiple(() =>
        {
            Assert.That(empty.PagesStored, Is.Zero);
            Assert.That(empty.CompressedBytes, Is.Zero);
            Assert.That(empty.SameFilledPages, Is.Zero);
            Assert.That(empty.MemoryUsedBytes, Is.Zero);
            Assert.That(zram.GetStats().PagesDiscarded, Is.EqualTo(1999));
        });

        var read = new byte[4096];
        read.AsSpan().Fill(1);
        zram.Read(2, read);
        Assert.That(read.All(b => b == 0), Is.True, "a discarded slot reads as zeros");
    }

    [Test]
    public void UnwrittenSlot_ReadsAsZeros()
    {
        using var zram = new ZramSwapDevice(Slots * 4096);
        var read = Enumerable.Repeat((byte)7, 4096).ToArray();
        Assert.That(zram.Read(10, read).IsOk, Is.True);
        Assert.That(read.All(b => b == 0), Is.True);
    }

    [Test]
    public void SeededConcurrentStoreAndDiscard_KeepsEveryPageAndTheCountsExact()
    {
        const int threads = 4;
        using var zram = new ZramSwapDevice(Slots * 4096);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var random = new Random(900 + t);
            var expected = new Dictionary<ulong, int>(); // slot -> seed of the page written (kind from seed)
            var page = new byte[4096];
            var read = new byte[4096];
            for (var op = 0; op < 3000; op++)
            {
                var slot = (ulong)(1 + t + (threads * random.Next(((int)Slots - 4) / threads)));
                var choice = random.Next(10);
                if (choice < 6)
                {
                    var seed = random.Next();
                    SwapPages.Fill(page, (SwapPageKind)(seed % 4), seed);
                    zram.Write(slot, page);
                    expected[slot] = seed;
                }
                else if (choice < 8 && expected.Remove(slot))
                {
                    zram.Discard(slot);
                }
                else if (expected.TryGetValue(slot, out var seed))
                {
                    SwapPages.Fill(page, (SwapPageKind)(seed % 4), seed);
                    zram.Read(slot, read);
                    if (!read.AsSpan().SequenceEqual(page))
                    {
                        failures.Enqueue($"thread {t} op {op} slot {slot}");
                    }
                }
            }

            foreach (var slot in expected.Keys)
            {
                zram.Discard(slot);
            }
        });

        Assert.That(failures, Is.Empty);
        var stats = zram.GetZramStats();
        Assert.Multiple(() =>
        {
            Assert.That(stats.PagesStored, Is.Zero);
            Assert.That(stats.CompressedBytes, Is.Zero);
            Assert.That(stats.MemoryUsedBytes, Is.Zero);
        });
    }

    [TestCase(0)]
    [TestCase(63)]
    [TestCase(4097)]
    public void ThresholdOutOfRange_IsRefused(int threshold)
    {
        var ex = Assert.Throws<SwapConfigurationException>(() => new ZramSwapDevice(Slots * 4096, threshold))!;
        Assert.That(ex.Rule, Is.EqualTo(SwapRule.ZramThresholdOutOfRange));
        Assert.That(ex.Message, Does.Contain(threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }
}
