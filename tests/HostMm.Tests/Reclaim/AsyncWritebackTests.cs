using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// With <see cref="ReclaimOptions.AsyncWriteback"/>, MADV_PAGEOUT of more than one reclaim batch writes its runs on the
/// writeback I/O thread while it unmaps the next batches (<see cref="SwapWriteback"/>), and waits for them before it
/// returns: the same pages end written, freed or kept as with synchronous writes; write errors keep pages resident and
/// dirty; and faults and writes racing the writeback never read a slot's stale data.
/// </summary>
public class AsyncWritebackTests
{
    private const int Pages = 256;

    private static readonly ReclaimOptions Async = new() { AsyncWriteback = true };

    [Test]
    public void Asynchronous_and_synchronous_pageout_end_in_the_same_state([Values] SwapDeviceKind kind)
    {
        var results = new List<(long Pswpout, long Resident, int Swapped)>();
        foreach (var async in new[] { false, true })
        {
            using var host = Create(kind, reclaim: new ReclaimOptions { AsyncWriteback = async });
            var mm = host.CreateMm();
            var start = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
            WritePattern(mm, start, Pages, seed: 5);

            mm.Madvise(start, Pages * Page, Advice.PageOut);

            Assert.That(host.Reclaim.Stats.NrWriteback, Is.Zero, "madvise returns after its writes completed");
            Assert.That(host.Reclaim.Stats.WritebackAsyncPages, Is.EqualTo(async ? Pages : 0));
            AssertConsistent(host);
            results.Add((host.Reclaim.Stats.Pswpout, mm.Stats.RssPages, SwappedPages(mm, start, Pages)));
            Assert.That(CorruptPages(mm, start, Pages, seed: 5), Is.Empty);
            AssertConsistent(host);
        }

        Assert.That(results[1], Is.EqualTo(results[0]));
        Assert.That(results[1], Is.EqualTo((Pages, 0L, Pages)));
    }

    [Test]
    public void A_write_error_at_completion_keeps_the_pages_resident_and_dirty_and_a_later_pass_writes_them()
    {
        using var host = Create(SwapDeviceKind.File, faults: new SwapFaultInjection { Seed = 9, WriteErrorRate = 0.01 }, reclaim: Async);
        var device = (FaultInjectingSwapDevice)host.Reclaim.Area!.Device;
        var mm = host.CreateMm();
        var start = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, Pages, seed: 6);

        mm.Madvise(start, Pages * Page, Advice.PageOut);

        var errors = host.Reclaim.Stats.SwapWriteErrors;
        Assert.That(errors, Is.GreaterThan(0), "some runs failed");
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThanOrEqualTo(Pages - errors), "every page of a run that did not fail was written");
        Assert.That(errors, Is.LessThan(Pages), "some runs were written");
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.EqualTo(errors), "each failed page is resident, dirty, in the swap cache");
        AssertConsistent(host);
        Assert.That(CorruptPages(mm, start, Pages, seed: 6), Is.Empty, "faults find the failed pages in the swap cache, the others on swap");
        AssertConsistent(host);

        device.WriteErrorRate = 0;
        mm.Madvise(start, Pages * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Stats.SwapWriteErrors, Is.EqualTo(errors));
        Assert.That(SwappedPages(mm, start, Pages), Is.EqualTo(Pages), "the second pass wrote the pages the first could not");
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero);
        Assert.That(CorruptPages(mm, start, Pages, seed: 6), Is.Empty);
        AssertConsistent(host);
    }

    /// <summary>
    /// A writer thread stamps and reads back pages (through faults on their swap entries, whether or not the page is
    /// still under writeback) while the host pages the whole range out; the writer's reads must always see its own last
    /// stamp, and after every round the host auditor must be clean and every page hold its last stamp — so a page
    /// written while its old contents were being written out never comes back as the old contents.
    /// </summary>
    [Test]
    public void Faults_and_writes_racing_the_writeback_never_read_stale_slot_data([Values] SwapDeviceKind kind, [Values(71)] int seed)
    {
        using var host = Create(kind, reclaim: Async);
        var mm = host.CreateMm();
        var start = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        var stamps = new long[Pages];
        var random = new Random(seed);
        for (var page = 0; page < Pages; page++)
        {
            Stamp(mm, start, page, stamps[page] = 1);
        }

        for (var round = 0; round < 8; round++)
        {
            var writerSeed = random.Next();
            var problems = new List<string>();
            using var go = new Barrier(2);
            var writer = new Thread(() =>
            {
                var mine = new Random(writerSeed);
                go.SignalAndWait();
                for (var op = 0; op < 200; op++)
                {
                    var page = mine.Next(Pages);
                    if (mine.Next(2) == 0)
                    {
                        Stamp(mm, start, page, ++stamps[page]);
                    }

                    var seen = ReadStamp(mm, start, page);
                    if (seen != (page, stamps[page]))
                    {
                        problems.Add($"round {round}: page {page} read {seen}, expected stamp {stamps[page]}");
                    }
                }
            });
            writer.Start();
            go.SignalAndWait();
            mm.Madvise(start, Pages * Page, Advice.PageOut);
            writer.Join();

            Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
            AssertConsistent(host);
            for (var page = 0; page < Pages; page++)
            {
                Assert.That(ReadStamp(mm, start, page), Is.EqualTo((page, stamps[page])), $"round {round}, page {page}");
            }

            AssertConsistent(host);
        }

        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(Pages), "the rounds wrote pages out again and again");
        Assert.That(host.Reclaim.Stats.WritebackAsyncPages, Is.GreaterThan(Pages), "through the asynchronous writeback");
        Assert.That(mm.Stats.SwapInFaults + mm.Stats.SwapCacheFaults, Is.GreaterThan(0));
    }

    private static void Stamp(Mm mm, Hypervisor.Notifier.Hva start, int page, long stamp)
    {
        var bytes = PageData(page, (int)(stamp % 1000));
        BitConverter.TryWriteBytes(bytes.AsSpan(8), stamp);
        mm.Write(start + ((ulong)page * Page), bytes);
    }

    private static (int Page, long Stamp) ReadStamp(Mm mm, Hypervisor.Notifier.Hva start, int page)
    {
        var bytes = new byte[Page];
        mm.Read(start + ((ulong)page * Page), bytes);
        var stamp = BitConverter.ToInt64(bytes, 8);
        var expected = PageData(page, (int)(stamp % 1000));
        BitConverter.TryWriteBytes(expected.AsSpan(8), stamp);
        return bytes.AsSpan().SequenceEqual(expected) ? (BitConverter.ToInt32(bytes, 0), stamp) : (-1, stamp);
    }
}
