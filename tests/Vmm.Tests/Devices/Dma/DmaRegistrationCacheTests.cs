using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Devices.Dma;

namespace Hypervisor.Vmm.Tests.Devices.Dma;

/// <summary>
/// The DMA engine's registration cache on a real host MM and user event channel: misses then hits; a swap-out, a KSM
/// merge, a migration and a munmap + re-mmap each invalidate exactly the translations of the pages they changed, which
/// the next copy resolves again, with no stale DMA and the right bytes; the unsafe cache copies through the stale frame.
/// </summary>
public sealed class DmaRegistrationCacheTests
{
    private const ulong Page = Paging.PageSize;
    private const int Pages = 4;

    private Host _host = null!;
    private Mm _mm = null!;
    private Hva _source;
    private Hva _destination;

    [SetUp]
    public void SetUp()
    {
        _host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2 },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
        });
        _mm = _host.CreateMm(0);
        _source = _mm.Mmap(2 * Pages * Page, Protection.Read | Protection.Write);
        _destination = _source + (Pages * Page);
        for (var i = 0; i < Pages; i++)
        {
            _mm.Write(_source + ((ulong)i * Page), PageData(i));
        }
    }

    [TearDown]
    public void TearDown()
    {
        if (!_mm.HasExited)
        {
            _mm.Exit();
        }

        _mm.Dispose();
        _host.Dispose();
    }

    [Test]
    public void TheFirstCopyMissesEveryPageAndTheSecondHitsThemAll()
    {
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Safe);

        Assert.That(Copy(cache), Is.EqualTo(DmaStatus.Done));
        var first = cache.Counters;
        Assert.That(Copy(cache), Is.EqualTo(DmaStatus.Done));
        var second = cache.Counters;

        Assert.Multiple(() =>
        {
            Assert.That((first.Misses, first.Hits), Is.EqualTo((2L * Pages, 0L)));
            Assert.That((second.Misses, second.Hits), Is.EqualTo((2L * Pages, 2L * Pages)), "nothing changed: the generation counter did not move");
            Assert.That(second.Regions, Is.EqualTo(2), "each buffer registered once, by cookie");
            Assert.That(second.Copies, Is.EqualTo(2));
            Assert.That(second.Bytes, Is.EqualTo(2L * Pages * (long)Page));
            Assert.That(second.Invalidations, Is.Zero);
            Assert.That(second.StaleDmas, Is.Zero);
            Assert.That(cache.Channel!.Stats.Regions, Is.EqualTo(2));
            AssertCopied();
        });
    }

    [Test]
    public void SwapOutInvalidatesExactlyThePageSwapped() =>
        AssertOnlyChangedPagesInvalidated(() => _mm.Madvise(_source + Page, Page, Advice.PageOut), [1]);

    [Test]
    public void MigrationInvalidatesExactlyThePageMoved()
    {
        AssertOnlyChangedPagesInvalidated(
            () => Assert.That(_host.Migration.MovePages(_mm, [_source + (2 * Page)], [1])[0].Node, Is.EqualTo(1)),
            [2]);
    }

    [Test]
    public void MunmapAndReMmapInvalidatesExactlyThePageReplaced()
    {
        AssertOnlyChangedPagesInvalidated(
            () =>
            {
                var page = _source + (3 * Page);
                _mm.Munmap(page, Page);
                _mm.Mmap(Page, Protection.Read | Protection.Write, MmapFlags.Fixed, page);
                _mm.Write(page, PageData(3));
            },
            [3]);
    }

    [Test]
    public void KsmMergeInvalidatesTheMergedPagesRegionWhoseTwoHitsCoalesced()
    {
        // Pages 0 and 1 of the source get equal contents: KSM write-protects one and replaces the other with it, two
        // starts on one region before the cache reads: as ummunotify, the second hit drops the hint, so the event covers
        // the whole source buffer; the destination's translations stay.
        _mm.Write(_source + Page, PageData(0));
        AssertOnlyChangedPagesInvalidated(
            () =>
            {
                _mm.Madvise(_source, 2 * Page, Advice.Mergeable);
                _host.Ksm.Run = KsmRunMode.Merge;
                for (var i = 0; i < 10 && _host.Ksm.Stats.PagesSharing == 0; i++)
                {
                    _host.Ksm.Step(1000);
                }

                Assert.That(_host.Ksm.Stats.PagesSharing, Is.EqualTo(1), "the two pages merged");
            },
            [0, 1],
            expectedData: i => PageData(i == 1 ? 0 : i),
            invalidated: Pages);
    }

    [Test]
    public void TwoChangesToOneBufferBeforeACopyCoalesceIntoOneEventForTheWholeRegion()
    {
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Safe);
        Copy(cache);
        _mm.Madvise(_source, Page, Advice.PageOut);
        _host.Migration.MovePages(_mm, [_source + (2 * Page)], [1]);

        Copy(cache);

        Assert.Multiple(() =>
        {
            Assert.That(cache.Counters.EventsRead, Is.EqualTo(1), "one event per region between reads");
            Assert.That(cache.Counters.Invalidations, Is.EqualTo(Pages), "without a hint the whole source buffer is dropped");
            Assert.That(cache.Counters.StaleDmas, Is.Zero);
            AssertCopied();
        });
    }

    [TestCase(1)]
    [TestCase(2)]
    public void CopiesRacingSwapOutsAndMigrationsAreNeverStaleAndAlwaysRight(int seed)
    {
        // The host thread swaps and migrates random source and destination pages while the test thread copies and
        // checks; the invariants: no stale DMA, every destination equals its source (a copy landing in a destination
        // frame between pageout's checksum and its write must leave the frame dirty, or the swap slot's checksum fails
        // on the next read), the host's own audit is clean after.
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Safe);
        using var stop = new CancellationTokenSource();
        Exception? hostFailure = null;
        var strikes = 0;
        var host = new Thread(() =>
        {
            var random = new Random(seed);
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var page = _source + ((ulong)random.Next(2 * Pages) * Page);
                    if (random.Next(2) == 0)
                    {
                        _mm.Madvise(page, Page, Advice.PageOut);
                    }
                    else
                    {
                        _host.Migration.MovePages(_mm, [page], [random.Next(2)]);
                    }

                    strikes++;
                }
            }
            catch (Exception exception)
            {
                hostFailure = exception;
            }
        }) { IsBackground = true, Name = "dma-test-host" };
        host.Start();
        var wrong = 0;
        for (var i = 0; i < 200; i++)
        {
            Assert.That(Copy(cache), Is.EqualTo(DmaStatus.Done));
            for (var p = 0; p < Pages; p++)
            {
                wrong += ReadPage(_destination + ((ulong)p * Page)).AsSpan().SequenceEqual(PageData(p)) ? 0 : 1;
            }
        }

        stop.Cancel();
        host.Join();

        Assert.Multiple(() =>
        {
            Assert.That(hostFailure, Is.Null);
            Assert.That(strikes, Is.Positive);
            Assert.That(cache.Counters.StaleDmas, Is.Zero);
            Assert.That(wrong, Is.Zero, "every destination page read back as its source");
            Assert.That(cache.Counters.Invalidations, Is.Positive);
            Assert.That(HostMmAuditor.Check(_host), Is.Empty);
        });
    }

    [Test]
    public void TheUnsafeCacheCopiesThroughTheStaleFrameAndTheDebugCheckCountsIt()
    {
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Unsafe);
        Copy(cache);
        _host.Migration.MovePages(_mm, [_source + Page], [1]); // a new frame on node 1; the old one is freed
        _mm.Write(_source + Page, PageData(100));

        Copy(cache);
        var counters = cache.Counters;

        Assert.Multiple(() =>
        {
            Assert.That(counters.StaleDmas, Is.EqualTo(1));
            Assert.That(counters.StalePages, Is.EqualTo(1));
            Assert.That(counters.StaleFreeFrames, Is.EqualTo(1), "the old frame was freed by the migration");
            Assert.That(counters.Invalidations, Is.Zero, "the unsafe cache never listens");
            Assert.That(counters.Regions, Is.Zero);
            Assert.That(ReadPage(_destination + Page).AsSpan().SequenceEqual(PageData(100)), Is.False, "the copy read the old frame, not the page the process maps");
        });
    }

    [Test]
    public void TheCacheOffResolvesEveryPageOfEveryCopy()
    {
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Off);
        Copy(cache);
        Copy(cache);

        Assert.Multiple(() =>
        {
            Assert.That((cache.Counters.Misses, cache.Counters.Hits), Is.EqualTo((4L * Pages, 0L)));
            Assert.That(cache.Counters.CachedTranslations, Is.Zero);
            AssertCopied();
        });
    }

    [Test]
    public void CopyRefusesABadLengthAndAnUnmappedPageFaults()
    {
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Safe);

        Assert.Multiple(() =>
        {
            Assert.That(() => cache.Copy(_source, _destination, 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("1 to"));
            Assert.That(() => cache.Copy(_source, _destination, DmaEngine.MaxLength + 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(cache.Copy(_source, _source + (64 * Page), (int)Page), Is.EqualTo(DmaStatus.Fault), "the destination is not mapped");
            Assert.That(cache.Counters.Failures, Is.EqualTo(1));
            Assert.That(_host.Memory.Frame(_mm.PageTable.Read(_source).Pfn).RefCount, Is.EqualTo(1), "the failed copy dropped the reference it had taken");
        });
    }

    private static byte[] PageData(int seed)
    {
        var bytes = new byte[Page];
        new Random(seed + 1).NextBytes(bytes);
        return bytes;
    }

    private DmaStatus Copy(DmaRegistrationCache cache) => cache.Copy(_source, _destination, (int)(Pages * Page));

    private byte[] ReadPage(Hva page)
    {
        var bytes = new byte[Page];
        _mm.Read(page, bytes);
        return bytes;
    }

    private void AssertCopied(Func<int, byte[]>? expectedData = null)
    {
        for (var i = 0; i < Pages; i++)
        {
            Assert.That(ReadPage(_destination + ((ulong)i * Page)).AsSpan().SequenceEqual((expectedData ?? PageData)(i)), Is.True, $"destination page {i} holds the source's bytes");
        }
    }

    /// <summary>
    /// Copies once (everything cached), runs <paramref name="change"/> on the source, copies again: exactly the pages in
    /// <paramref name="changed"/> were invalidated and resolved again to the frame the host maps now; the others hit.
    /// </summary>
    private void AssertOnlyChangedPagesInvalidated(Action change, int[] changed, Func<int, byte[]>? expectedData = null, int? invalidated = null)
    {
        var dropped = invalidated ?? changed.Length;
        using var cache = new DmaRegistrationCache(_mm, DmaCacheMode.Safe);
        Copy(cache);
        var before = cache.Counters;
        var cachedBefore = Enumerable.Range(0, Pages).Select(i => cache.TryGetCached(_source + ((ulong)i * Page), out var pfn) ? pfn : default).ToArray();

        change();
        Assert.That(cache.Channel!.Generation, Is.GreaterThan(0UL), "the change reached the channel");
        Assert.That(Copy(cache), Is.EqualTo(DmaStatus.Done));
        var after = cache.Counters;

        Assert.Multiple(() =>
        {
            Assert.That(after.Invalidations - before.Invalidations, Is.EqualTo(dropped), "exactly the translations the events covered were dropped");
            Assert.That(after.Misses - before.Misses, Is.EqualTo(dropped), "and resolved again");
            Assert.That(after.Hits - before.Hits, Is.EqualTo((2 * Pages) - dropped), "every other page hit");
            Assert.That(cache.Channel.Stats.HitsCoalesced > 0, Is.EqualTo(dropped > changed.Length), "a whole region is dropped only when its hits coalesced");
            Assert.That(after.EventsRead, Is.Positive);
            Assert.That(after.Barriers - before.Barriers, Is.Positive, "the cache waited for the reported invalidation to end before resolving again");
            Assert.That(after.StaleDmas, Is.Zero);
            for (var i = 0; i < Pages; i++)
            {
                var page = _source + ((ulong)i * Page);
                var now = _mm.PageTable.Read(page).Pfn;
                if (cache.TryGetCached(page, out var cached))
                {
                    Assert.That(cached, Is.EqualTo(now), $"source page {i}: the cached frame is the one mapped now");
                }

                if (!changed.Contains(i) && dropped == changed.Length)
                {
                    Assert.That(cached, Is.EqualTo(cachedBefore[i]), $"source page {i} was not changed and kept its translation");
                }
            }

            AssertCopied(expectedData);
        });
    }
}
