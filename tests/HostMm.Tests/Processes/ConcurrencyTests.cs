using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// Faults and get-user-pages on several threads while others mprotect, munmap, re-mmap and MADV_DONTNEED
/// the same pages. Seeded operation streams; afterwards the auditor must find every frame's mapcount equal
/// to the PTEs mapping it, references balanced, and no free frame mapped.
/// </summary>
public class ConcurrencyTests
{
    private const int Pages = 64;

    [Test]
    public void FaultsRacingMappingChangesLeaveTheHostConsistent([Values(101, 202, 303)] int seed) => Race(seed, changes: 1500);

    /// <summary>The same race, long: run with <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressFaultsRacingMappingChanges([Range(1, 8)] int seed) => Race(seed * 7919, changes: 200_000);

    private static void Race(int seed, int changes)
    {
        using var host = Create(megabytes: 128);
        var mm = host.CreateMm();
        var start = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        var stop = false;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        long faults = 0, gups = 0, applied = 0;

        var faulters = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            var random = new Random(seed * 10 + t);
            var buffer = new byte[64];
            while (!Volatile.Read(ref stop))
            {
                var page = start + ((ulong)random.Next(Pages) * Page);
                try
                {
                    switch (random.Next(4))
                    {
                        case 0:
                            mm.HandleFault(page, random.Next(2) == 0 ? FaultAccess.Read : FaultAccess.Write);
                            Interlocked.Increment(ref faults);
                            break;
                        case 1:
                            var gup = mm.GetUserPages(page, write: random.Next(2) == 0);
                            if (gup.Succeeded)
                            {
                                Assert.That(host.Memory.IsFree(gup.Pfn), Is.False, "get-user-pages returned a free frame");
                                mm.ReleasePage(gup.Pfn);
                            }

                            Interlocked.Increment(ref gups);
                            break;
                        case 2:
                            random.NextBytes(buffer);
                            mm.Write(page + 8, buffer);
                            break;
                        default:
                            mm.Read(page, buffer);
                            break;
                    }
                }
                catch (HostFaultException)
                {
                    // The page was unmapped or write-protected by a racing thread: an expected outcome.
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            }
        })).ToList();

        // The changer paces itself on the faulters (every 64 changes it waits for one more fault or
        // get-user-pages), so the two interleave over the whole run however the scheduler treats them.
        long Progress() => Interlocked.Read(ref faults) + Interlocked.Read(ref gups);
        void AwaitProgress(long beyond)
        {
            var deadline = Environment.TickCount64 + 10_000;
            while (Progress() <= beyond && errors.IsEmpty)
            {
                if (Environment.TickCount64 > deadline)
                {
                    errors.Enqueue(new TimeoutException($"the faulting threads made no progress beyond {beyond} operations in 10 s"));
                    return;
                }

                Thread.Yield();
            }
        }

        var changer = new Thread(() =>
        {
            var random = new Random(seed);
            for (var i = 0; i < changes; i++)
            {
                if (i % 64 == 0)
                {
                    AwaitProgress(Progress());
                }

                var first = (ulong)random.Next(Pages - 8);
                var count = (ulong)random.Next(1, 8);
                var at = start + (first * Page);
                try
                {
                    switch (random.Next(5))
                    {
                        case 0:
                            mm.Mprotect(at, count * Page, Protection.Read);
                            break;
                        case 1:
                            mm.Mprotect(at, count * Page, Protection.Read | Protection.Write);
                            break;
                        case 2:
                            mm.Madvise(at, count * Page, Advice.DontNeed);
                            break;
                        case 3:
                            mm.Munmap(at, count * Page);
                            break;
                        default:
                            mm.Mmap(count * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, at);
                            break;
                    }

                    Interlocked.Increment(ref applied);
                }
                catch (UnmappedRangeException)
                {
                    // mprotect/madvise over a hole left by an earlier munmap: refused, as Linux does.
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            }

            AwaitProgress(100);
            Volatile.Write(ref stop, true);
        });

        faulters.ForEach(t => t.Start());
        changer.Start();
        changer.Join();
        faulters.ForEach(t => t.Join());

        Assert.That(errors, Is.Empty, string.Join(Environment.NewLine + "----" + Environment.NewLine, errors.Take(3).Select(e => e.ToString())));
        Assert.That(Interlocked.Read(ref faults) + Interlocked.Read(ref gups), Is.GreaterThan(100));
        Assert.That(Interlocked.Read(ref applied), Is.GreaterThan(changes / 3));
        AssertConsistent(host);

        mm.Exit();
        AssertConsistent(host);
    }
}
