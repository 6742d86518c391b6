using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Two fixes in classic and multi-gen reclaim alike: a write through a get-user-pages reference dirties the page itself
/// (so a swap-out racing the copy cannot drop the write as clean), and direct reclaim does not declare a cgroup out of
/// memory while reclaim is freeing pages that concurrent allocators take first.
/// </summary>
public class GupWriteAndChargeRetryTests
{
    [Test]
    public void A_write_to_a_clean_swap_cache_page_marks_the_page_dirty_not_only_its_pte([Values] LruPolicy policy)
    {
        using var host = Create(reclaim: new ReclaimOptions { Policy = policy });
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 1, seed: 1);
        mm.Madvise(start, Page, Advice.PageOut);
        Assert.That(CorruptPages(mm, start, 1, seed: 1), Is.Empty, "a read swaps the page back in");
        var pfn = mm.PageTable.Read(start).Pfn;
        Assert.That(host.Memory.Frame(pfn).Has(FrameFlags.SwapCache), Is.True, "read in: still cached, a valid copy on swap");
        Assert.That(host.Memory.Frame(pfn).Has(FrameFlags.Dirty), Is.False);

        mm.Write(start + 8, new byte[] { 0xAB });

        // Reclaim may unmap the page (moving the PTE's dirty bit to the page) and write it out between the fault and the
        // copy; only the page's own dirty flag, set after the copy, makes it write the page again.
        Assert.That(host.Memory.Frame(pfn).Has(FrameFlags.Dirty), Is.True);
        mm.Madvise(start, Page, Advice.PageOut);
        var buffer = new byte[1];
        mm.Read(start + 8, buffer);
        Assert.That(buffer[0], Is.EqualTo(0xAB), "the write survived the next swap-out");
        AssertConsistent(host);
    }

    [Test]
    public void Threads_filling_a_small_cgroup_together_never_see_a_spurious_out_of_memory([Values] LruPolicy policy)
    {
        using var host = Create(swapMegabytes: 32, reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 32);
        const int threads = 4;
        const int pagesEach = 64;
        var start = mm.Mmap(threads * pagesEach * Page, Protection.Read | Protection.Write);
        var problems = new ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, threads).Select(id => new Thread(() =>
        {
            var random = new Random(id + 100);
            var first = start + ((ulong)(id * pagesEach) * Page);
            try
            {
                for (var round = 0; round < 20_000 && problems.IsEmpty; round++)
                {
                    var page = random.Next(pagesEach);
                    mm.Write(first + ((ulong)page * Page), BitConverter.GetBytes(round));
                }
            }
            catch (Exception e)
            {
                problems.Enqueue($"thread {id}: {e.GetType().Name}: {e.Message}");
            }
        })).ToList();
        var stop = 0;
        var kswapd = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                host.Reclaim.Step(64); // the background reclaimer takes pages too
                Thread.Yield();
            }
        });
        var meddler = new Thread(() =>
        {
            // Forks hold the mmap lock for write (reverse-map walks of the process give up meanwhile) and page-outs isolate
            // pages: the rounds in which direct reclaim frees nothing although memory will come back.
            var random = new Random(7);
            while (Volatile.Read(ref stop) == 0)
            {
                var at = start + ((ulong)random.Next((threads * pagesEach) - 8) * Page);
                if (random.Next(2) == 0)
                {
                    mm.Madvise(at, 8 * Page, Advice.PageOut);
                }
                else
                {
                    mm.Fork().Exit();
                }
            }
        });
        workers.ForEach(t => t.Start());
        kswapd.Start();
        meddler.Start();
        workers.ForEach(t => t.Join());
        Volatile.Write(ref stop, 1);
        kswapd.Join();
        meddler.Join();

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems));
        Assert.That(host.Reclaim.Stats.OomFailures, Is.Zero);
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0), "the threads did reclaim one another's pages");
        AssertConsistent(host);
    }

    [Test]
    public void An_allocation_waits_for_the_pages_a_preempted_reclaimer_holds_isolated([Values] LruPolicy policy)
    {
        using var host = Create(swapMegabytes: 32, reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 16);
        var start = mm.Mmap(17 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 3);
        var held = Enumerable.Range(0, 16).Select(i => mm.PageTable.Read(start + ((ulong)i * Page)).Pfn).ToList();

        // Every page of the full cgroup off its list, as a reclaimer preempted in the middle of its batch holds them, for
        // longer than the fast retries last: the allocation must wait for them rather than declare out of memory.
        Assert.That(held.All(host.Reclaim.TryIsolate), Is.True);
        var returning = 0;
        var release = new Thread(() =>
        {
            Thread.Sleep(500);
            Volatile.Write(ref returning, 1); // before the first page goes back: nothing could be reclaimed until then
            held.ForEach(host.Reclaim.PutBackIsolated);
        });
        release.Start();
        mm.Write(start + (16 * Page), new byte[] { 0x5A });
        var waited = Volatile.Read(ref returning) == 1;
        release.Join();

        Assert.That(waited, Is.True, "the allocation completed only once the isolated pages were coming back");

        Assert.That(host.Reclaim.Stats.OomFailures, Is.Zero);
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0), "the seventeenth page took the room of a swapped-out one");
        Assert.That(CorruptPages(mm, start, 16, seed: 3), Is.Empty);
        AssertConsistent(host);
    }
}
