using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Notifier.Tests.UserEvents;

/// <summary>
/// Several threads issue starts on random ranges while another registers and unregisters regions and an
/// async reader drains; the channel's accounting must come out exact.
/// </summary>
public sealed class UserEventChannelConcurrencyTests
{
    private const int Regions = 48;
    private const ulong Domain = 2048;          // pages the writers aim at
    private const ulong ChurnBase = 100_000;    // pages only the churn thread uses
    private const ulong ChurnCookieBase = 1_000_000;
    private const int Writers = 4;
    private const int Phases = 20;
    private const int StartsPerWriterPerPhase = 100;

    private static Hva P(ulong page) => new(page * Paging.PageSize);

    [TestCase(11)]
    [TestCase(12)]
    public async Task ConcurrentStartsRegistrationsAndReads_KeepExactAccounting(int seed)
    {
        var mm = new TestMm();
        using var channel = UserEventChannel.CreateDetached(mm);
        var notifier = (IMmuNotifier)channel;

        var layout = new Random(seed);
        var regions = new (ulong Start, ulong End)[Regions];
        for (var r = 0; r < Regions; r++)
        {
            var start = (ulong)layout.Next(0, (int)Domain - 64);
            regions[r] = (start, start + (ulong)layout.Next(1, 64));
            channel.RegisterRegion((ulong)r, P(regions[r].Start), P(regions[r].End));
        }

        var hits = new long[Regions];
        long churnHits = 0;
        long expectedGeneration = 0;
        var nextChurnCookie = ChurnCookieBase;

        // The reader: wait, read with a buffer that always drains everything, check each read.
        var reported = new Dictionary<ulong, long>();
        var readerErrors = new List<string>();
        ulong lastCounter = 0;
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            var buffer = new UserEvent[Regions + (Writers * StartsPerWriterPerPhase * Phases) + 2];
            try
            {
                while (await channel.WaitAsync(stop.Token))
                {
                    var count = channel.Read(buffer);
                    var seen = new HashSet<ulong>();
                    for (var i = 0; i < count; i++)
                    {
                        var e = buffer[i];
                        if (e.Type == UserEventType.Last)
                        {
                            if (i != count - 1)
                            {
                                readerErrors.Add($"Last event at {i} of {count}");
                            }

                            if (e.CookieOrCounter < lastCounter)
                            {
                                readerErrors.Add($"counter went back from {lastCounter} to {e.CookieOrCounter}");
                            }

                            lastCounter = e.CookieOrCounter;
                        }
                        else
                        {
                            if (!seen.Add(e.CookieOrCounter))
                            {
                                readerErrors.Add($"cookie {e.CookieOrCounter} reported twice in one read");
                            }

                            reported[e.CookieOrCounter] = reported.GetValueOrDefault(e.CookieOrCounter) + 1;
                        }
                    }

                    if (count > 0 && buffer[count - 1].Type != UserEventType.Last)
                    {
                        readerErrors.Add("a draining read did not end with a Last event");
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        for (var phase = 0; phase < Phases; phase++)
        {
            var workers = new Task[Writers + 1];
            for (var w = 0; w < Writers; w++)
            {
                var rng = new Random((seed * 1000) + (phase * 10) + w);
                workers[w] = Task.Run(() =>
                {
                    for (var i = 0; i < StartsPerWriterPerPhase; i++)
                    {
                        var start = (ulong)rng.Next(0, (int)Domain);
                        var end = start + (ulong)rng.Next(1, 16);
                        var any = false;
                        for (var r = 0; r < Regions; r++)
                        {
                            if (start < regions[r].End && regions[r].Start < end)
                            {
                                Interlocked.Increment(ref hits[r]);
                                any = true;
                            }
                        }

                        if (any)
                        {
                            Interlocked.Increment(ref expectedGeneration);
                        }

                        notifier.InvalidateRangeStart(new NotifierRange(mm, P(start), P(end), NotifierEvent.Clear));
                    }
                });
            }

            // Churn: mutate the tree while starts run. Each kept region is hit exactly once, by this
            // thread; each dropped one is never hit, so the accounting stays exact.
            var churnPhase = phase;
            workers[Writers] = Task.Run(() =>
            {
                for (var i = 0; i < 50; i++)
                {
                    var kept = nextChurnCookie++;
                    var dropped = nextChurnCookie++;
                    var page = ChurnBase + (ulong)((churnPhase * 200) + (i * 2));
                    channel.RegisterRegion(kept, P(page), P(page + 1));
                    channel.RegisterRegion(dropped, P(page + 1), P(page + 2));
                    channel.UnregisterRegion(dropped);
                    Interlocked.Increment(ref expectedGeneration);
                    Interlocked.Increment(ref churnHits);
                    notifier.InvalidateRangeStart(new NotifierRange(mm, P(page), P(page + 1), NotifierEvent.Unmap));
                }
            });

            await Task.WhenAll(workers);

            // No lost wake-up: the reader sits in WaitAsync between phases, so it must drain every phase.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (channel.HasPendingEvents && DateTime.UtcNow < deadline)
            {
                await Task.Delay(1);
            }

            Assert.That(channel.HasPendingEvents, Is.False, $"the reader did not drain phase {phase}: a wake-up was lost");
        }

        stop.Cancel();
        await reader.WaitAsync(TimeSpan.FromSeconds(10));

        var stats = channel.Stats;
        var totalHits = hits.Sum() + churnHits;
        Assert.Multiple(() =>
        {
            Assert.That(readerErrors, Is.Empty);
            Assert.That(channel.Generation, Is.EqualTo((ulong)expectedGeneration), "counter == starts that hit at least one region");
            Assert.That(lastCounter, Is.EqualTo(channel.Generation), "the final Last event carries the final counter");
            Assert.That(stats.RegionHits, Is.EqualTo(totalHits));
            Assert.That(reported.Values.Sum() + stats.HitsCoalesced, Is.EqualTo(totalHits), "every hit is delivered or coalesced");
            Assert.That(stats.PendingEvents, Is.Zero);
            Assert.That(stats.Regions, Is.EqualTo(Regions + (Phases * 50)));
            for (var r = 0; r < Regions; r++)
            {
                var got = reported.GetValueOrDefault((ulong)r);
                Assert.That(got >= 1 == hits[r] >= 1, $"region {r}: hit {hits[r]} times, reported {got} times");
                Assert.That(got, Is.LessThanOrEqualTo(hits[r]), $"region {r} reported more often than hit");
            }

            for (var c = ChurnCookieBase; c < nextChurnCookie; c += 2)
            {
                Assert.That(reported.GetValueOrDefault(c), Is.EqualTo(1), $"churn cookie {c}");
                Assert.That(reported.ContainsKey(c + 1), Is.False, $"unregistered churn cookie {c + 1} was reported");
            }
        });

        // The workload must have produced real contention for the checks above to mean much.
        Assert.That(stats.HitsCoalesced, Is.GreaterThan(0));
        Assert.That(reported.Count, Is.GreaterThan(Regions / 2));
    }
}
