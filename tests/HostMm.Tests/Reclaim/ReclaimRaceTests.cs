using Hypervisor.Notifier;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Seeded races: worker threads write and verify their own pages of a process larger than its cgroup limit (so every
/// access may fault through direct reclaim, swap-out and swap-in) while a background reclaimer steps, and another thread
/// pages out, protects and unprotects, and forks and reaps snapshots. No read may return another page's data or a
/// stale value, and the auditor must find the host consistent at the end.
/// </summary>
public class ReclaimRaceTests
{
    private const int PagesPerWorker = 96;
    private const int Workers = 2;

    [Test]
    public void Workers_never_lose_or_mix_pages_while_the_host_reclaims_and_swaps([Values(11, 12)] int seed, [Values] LruPolicy policy) => Race(seed, rounds: 3_000, policy);

    /// <summary>The same race, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressWorkersNeverLoseOrMixPages([Range(1, 4)] int seed, [Values] LruPolicy policy) => Race(seed * 7907, rounds: 60_000, policy);

    private static void Race(int seed, int rounds, LruPolicy policy)
    {
        using var host = Create(swapMegabytes: 32, reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 96);
        var start = mm.Mmap((ulong)(Workers * PagesPerWorker) * Page, Protection.Read | Protection.Write);
        var problems = new ConcurrentQueue<string>();
        var stop = 0;
        long accesses = 0;

        var workers = Enumerable.Range(0, Workers).Select(id => new Thread(() =>
        {
            try
            {
                // At least the rounds asked for, and on until the race has swapped enough (bounded): on 2 cores the threads
                // may start late and overlap little.
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
                Work(mm, start + ((ulong)(id * PagesPerWorker) * Page), seed * 10 + id, rounds, () => host.Reclaim.Stats.Pswpin >= 200 || DateTime.UtcNow > deadline, problems, ref accesses);
            }
            catch (Exception e)
            {
                problems.Enqueue($"worker {id}: {e}");
            }
        })).ToList();
        var kswapd = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                host.Reclaim.Step(64);
                Thread.Yield();
            }
        });
        var meddler = new Thread(() =>
        {
            var random = new Random(seed);
            try
            {
                while (Volatile.Read(ref stop) == 0)
                {
                    var page = (ulong)random.Next(Workers * PagesPerWorker - 8);
                    var at = start + (page * Page);
                    switch (random.Next(4))
                    {
                        case 0:
                            mm.Madvise(at, 8 * Page, Advice.PageOut);
                            break;
                        case 1:
                            mm.Madvise(at, 8 * Page, Advice.Cold);
                            break;
                        case 2:
                            mm.Mprotect(at, 8 * Page, Protection.Read);
                            Thread.Yield();
                            mm.Mprotect(at, 8 * Page, Protection.Read | Protection.Write);
                            break;
                        default:
                            var child = mm.Fork();
                            Thread.Yield();
                            child.Exit();
                            break;
                    }
                }
            }
            catch (Exception e)
            {
                problems.Enqueue($"meddler: {e}");
            }
        });

        workers.ForEach(t => t.Start());
        kswapd.Start();
        meddler.Start();
        workers.ForEach(t => t.Join());
        Volatile.Write(ref stop, 1);
        kswapd.Join();
        meddler.Join();

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThanOrEqualTo(200), "the race swapped");
        Assert.That(host.Reclaim.Stats.Pswpin, Is.GreaterThanOrEqualTo(200));
        AssertConsistent(host);
    }

    /// <summary>
    /// One worker: each page holds (page, version); the worker bumps a random page's version by writing it, and checks
    /// a random page reads back with the version it last wrote. A write may find the page write-protected for a moment
    /// (the meddler's mprotect): it retries.
    /// </summary>
    private static void Work(Mm mm, Hva first, int seed, int rounds, Func<bool> enough, ConcurrentQueue<string> problems, ref long accesses)
    {
        var random = new Random(seed);
        var versions = new long[PagesPerWorker];
        var buffer = new byte[16];
        for (var round = 0; (round < rounds || !enough()) && problems.IsEmpty; round++)
        {
            var page = random.Next(PagesPerWorker);
            var at = first + ((ulong)page * Page);
            if (random.Next(3) == 0)
            {
                var version = versions[page] + 1;
                BinaryPrimitives.WriteInt64LittleEndian(buffer, page);
                BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(8), version);
                while (true)
                {
                    try
                    {
                        mm.Write(at, buffer);
                        break;
                    }
                    catch (HostFaultException)
                    {
                        Thread.Yield(); // read-only for a moment
                    }
                }

                versions[page] = version;
            }
            else
            {
                mm.Read(at, buffer);
                var owner = BinaryPrimitives.ReadInt64LittleEndian(buffer);
                var seen = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(8));
                var expected = versions[page];
                if ((expected == 0 && (owner != 0 || seen != 0)) || (expected != 0 && (owner != page || seen != expected)))
                {
                    problems.Enqueue($"page {page}: read (owner {owner}, version {seen}), expected (owner {page}, version {expected})");
                }
            }

            Interlocked.Increment(ref accesses);
        }
    }
}
