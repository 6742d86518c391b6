using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo.Stress;
using Hypervisor.Vmm.Tests.Support;
using Hypervisor.Vmm.Tests.Tracing;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="StressDemo"/>: every mechanism runs under the guest and reaches its memory, no page is corrupted and every
/// continuous audit is clean; the run executes its seed's schedule in order, and the same seed draws the same schedule.
/// </summary>
public sealed class StressDemoTests
{
    private static StressDemoOptions Short(int seed) => new()
    {
        Duration = TimeSpan.FromSeconds(8),
        AuditInterval = TimeSpan.FromMilliseconds(400),
        HostMemoryShare = 0.65, // reclaim early in the first pass, however slow the build, with room left for a collapse
        Seed = seed,
        Vcpus = 2,
        GuestBytes = 32UL << 20,
        RegionBytes = 4UL << 20,
        GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("stress")),
    };

    private static StressGuestLayout Layout(int dmaChunks = 0) => StressGuestLayout.For(0x230000, 2, 8UL << 20) with { DmaChunks = dmaChunks };

    [Test]
    [Category(TestCategories.Guest)]
    public void EveryMechanismRunsUnderTheGuestWithCleanAuditsAndNoCorruptedPage()
    {
        var trace = new TraceRecorder();
        var result = new StressDemo(Short(seed: 7) with { Trace = trace }).Run();
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, result.Mechanisms.Select(m => $"{m.Name}: {m.Operations} {m.OperationName}, {m.Effect} {m.EffectName}; {m.Detail}")));
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, result.CorruptionLines));

        Assert.Multiple(() =>
        {
            Assert.That(result.Problem, Is.Null);
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.AuditPasses, Is.Positive);
            Assert.That(result.CorruptedPages, Is.Zero, string.Join(Environment.NewLine, result.CorruptionLines.Append(result.Verdict)));
            Assert.That(result.GuestExitCode, Is.Zero, result.Verdict);
            Assert.That(result.PagesVerified, Is.Positive);
            Assert.That(result.Mechanisms.Select(m => m.Kind), Is.EqualTo(Enum.GetValues<StressMechanismKind>()), "one row per mechanism, in order");
            foreach (var mechanism in result.Mechanisms)
            {
                Assert.That(mechanism.Operations, Is.Positive, $"{mechanism.Name}: {mechanism.OperationName}");
                Assert.That(mechanism.Effect, Is.Positive, $"{mechanism.Name}: {mechanism.EffectName} ({mechanism.Detail})");
            }

            Assert.That(result.MemoryFaultExits, Is.Positive, "guest writes into read-only windows exited to the VMM");
            Assert.That(result.SptesZapped, Is.Positive);
            Assert.That(result.WorstInvalidation, Is.GreaterThan(TimeSpan.Zero));
            Assert.That(result.Succeeded, Is.True, StressDemoReport.Failure(result));

            // The DMA engine copied under every mechanism, its cache was invalidated by them, and no copy was stale or wrong.
            Assert.That(result.Dma, Is.Not.Null);
            Assert.That(result.Dma!.Value.Copies, Is.Positive, "DMA copies");
            Assert.That(result.DmaVerifiedPages, Is.Positive, "DMA destination pages verified");
            Assert.That(result.StaleDmas, Is.Zero, "stale DMAs");
            Assert.That(result.DmaCorruptedPages, Is.Zero, string.Join(Environment.NewLine, result.DmaCorruptionLines));
            Assert.That(result.Dma.Value.Hits, Is.Positive, "the cache served translations");
            Assert.That(result.Dma.Value.Invalidations, Is.Positive, "the host's events invalidated cached translations");

            // The same run with one mechanism idle is inconclusive, not a failure: every check held, and the line says
            // what to do (run longer or leave it out).
            Assert.That(result.Succeeded, Is.True, StressDemoReport.Failure(result));
            var idle = result with
            {
                Mechanisms = [.. result.Mechanisms.Select(m => m.Kind == StressMechanismKind.ThpSplit ? m with { Operations = 0 } : m)],
            };
            Assert.That(idle.Succeeded, Is.False, "a mechanism that never acted");
            Assert.That(idle.ChecksHeld, Is.True, "the checks held");
            Assert.That(StressDemoReport.Inconclusive(idle), Does.StartWith("inconclusive: ").And.EndWith("--without thp-split"));
            Assert.That((idle with { AuditViolationCount = 1 }).ChecksHeld, Is.False, "a violation is a failure whatever ran");

            // The run executed its seed's schedule in order: each scheduled mechanism's operations are the schedule's prefix.
            var schedule = new StressSchedule(7, result.Layout);
            foreach (var mechanism in result.Mechanisms.Where(m => StressSchedule.Scheduled.Contains(m.Kind)))
            {
                Assert.That(mechanism.Sample, Is.Not.Empty, mechanism.Name);
                Assert.That(mechanism.Sample, Is.EqualTo(schedule.Take(mechanism.Kind, mechanism.Sample.Count)), $"{mechanism.Name} ran its schedule");
            }

            // --trace: a well-formed timeline with the mechanisms' threads as tracks (those whose operations always record events).
            var path = Path.Combine(Path.GetTempPath(), "hv-stress-trace-" + Guid.NewGuid().ToString("N") + ".json");
            try
            {
                using (var file = File.Create(path))
                {
                    ChromeTraceWriter.Write(file, trace);
                }

                var timeline = TraceFile.Load(path);
                Assert.That(timeline.Problems, Is.Empty, string.Join(Environment.NewLine, timeline.Problems.Take(10)));
                var tracks = timeline.Named("thread_name").Select(e => e.GetProperty("args").GetProperty("name").GetString()).ToHashSet();
                Assert.That(tracks, Is.SupersetOf(new[] { "stress-Migration", "stress-Fork", "stress-MprotectStorm" }));
            }
            finally
            {
                File.Delete(path);
            }
        });
    }

    [Test]
    public void TheSameSeedDrawsTheSameScheduleAndAnotherSeedAnother()
    {
        foreach (var kind in StressSchedule.Scheduled)
        {
            var first = new StressSchedule(42, Layout()).Take(kind, 200);
            var again = new StressSchedule(42, Layout()).Take(kind, 200);
            var other = new StressSchedule(43, Layout()).Take(kind, 200);
            Assert.That(again, Is.EqualTo(first), $"{kind}: same seed");
            Assert.That(other, Is.Not.EqualTo(first), $"{kind}: another seed");
            Assert.That(first.Select(o => o.Number), Is.EqualTo(Enumerable.Range(1, 200).Select(n => (long)n)));
            Assert.That(first.Select(o => o.Chunk), Is.All.InRange(0, Layout().Chunks - 1), $"{kind}: inside the data area");
            if (kind is not (StressMechanismKind.NumaBalancing or StressMechanismKind.ThpCollapse))
            {
                // Their Pages is a range (the others' a scan budget): it lies in the data area.
                Assert.That(first.Select(o => Layout().ChunkGpa(o.Chunk) + ((ulong)(o.Page + o.Pages) * 4096)), Is.All.LessThanOrEqualTo(Layout().DataEndGpa), $"{kind}: ranges inside the data area");
            }
        }
    }

    [Test]
    public void WithTheDmaEngineTheMechanismsStrikeItsBuffersAndItsCopiesStayInThem()
    {
        var layout = Layout(dmaChunks: 1);
        var schedule = new StressSchedule(42, layout);
        Assert.Multiple(() =>
        {
            Assert.That(layout.HostChunks, Is.EqualTo(layout.Chunks + 1));
            Assert.That(layout.DmaGpa, Is.EqualTo(layout.DataEndGpa));
            Assert.That(layout.HostEndGpa, Is.EqualTo(layout.DataEndGpa + StressGuestLayout.ChunkBytes));
            foreach (var kind in new[] { StressMechanismKind.Migration, StressMechanismKind.MemslotRemap, StressMechanismKind.DontNeed, StressMechanismKind.ThpSplit })
            {
                var operations = schedule.Take(kind, 200);
                Assert.That(operations.Select(o => o.Chunk), Is.All.InRange(0, layout.HostChunks - 1), $"{kind}: inside the data area or the DMA chunk");
                Assert.That(operations.Count(o => layout.IsDmaChunk(o.Chunk)), Is.Positive, $"{kind} strikes the DMA buffers");
                Assert.That(operations.Select(o => layout.ChunkGpa(o.Chunk) + ((ulong)(o.Page + o.Pages) * 4096)), Is.All.LessThanOrEqualTo(layout.HostEndGpa), $"{kind}: ranges inside");
            }

            var copies = schedule.Take(StressMechanismKind.Dma, 200);
            Assert.That(copies.Select(o => o.Page % DmaMechanism.MaxPages), Is.All.Zero, "copies start on a slot, so the cache sees buffers again");
            Assert.That(copies.Select(o => o.Pages).Distinct().Order(), Is.EqualTo(new[] { 4, 8, 16 }));
            Assert.That(copies.Select(o => o.Page + o.Pages), Is.All.LessThanOrEqualTo(StressGuestLayout.ChunkPages / 2), "sources in the chunk's first half");
            Assert.That(copies.Select(o => o.Chunk), Is.All.Zero);
        });
    }

    [Test]
    public void DaemonsHaveNoSchedule()
    {
        Assert.That(() => new StressSchedule(1, Layout()).For(StressMechanismKind.Ksm), Throws.ArgumentException.With.Message.Contains("host daemon"));
    }

    [Test]
    public void TheLayoutIsTheGuestsOwn()
    {
        // guests/stress.c: control page at the first MiB after the image, 4 bytes of discard counter and 4 of snapshot
        // per data page after it, data at the next 2 MiB boundary.
        var layout = StressGuestLayout.For(0x230000, 2, 8UL << 20);
        Assert.Multiple(() =>
        {
            Assert.That(layout.ControlGpa, Is.EqualTo(0x300000));
            Assert.That(layout.DiscardGpa, Is.EqualTo(0x301000));
            Assert.That(layout.DataGpa, Is.EqualTo(0x400000));
            Assert.That(layout.Chunks, Is.EqualTo(8));
            Assert.That(layout.DiscardCounterGpa(3), Is.EqualTo(0x30100C));
        });
    }

    [TestCase("--duration 0", "--duration")]
    [TestCase("--smp 9", "--smp")]
    [TestCase("--seed -1", "--seed")]
    [TestCase("--seed abc", "--seed")]
    [TestCase("-m 8M", "--mem")]
    [TestCase("-m 33M", "--mem")]
    [TestCase("--smp 8 -m 16M", "needs a region")]
    [TestCase("--without Ksm", "host daemon")]
    [TestCase("--without Nothing", "--without")]
    [TestCase("--without ksm", "ksm is a host daemon")]
    [TestCase("--without thp-split bogus", "got 'bogus'")]
    public void BadOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["demo", "stress", "--plain", .. options.Split(' ')]);

        CliAssert.OneErrorLine(result, message);
    }

    [TestCase("thp-split", StressMechanismKind.ThpSplit)]
    [TestCase("ThpSplit", StressMechanismKind.ThpSplit)]
    [TestCase("THP_SPLIT", StressMechanismKind.ThpSplit)]
    [TestCase("dontneed", StressMechanismKind.DontNeed)]
    [TestCase("mprotect-storm", StressMechanismKind.MprotectStorm)]
    public void MechanismNamesParseInKebabOrEnumSpelling(string text, StressMechanismKind expected)
    {
        Assert.That(StressMechanismNames.TryParse(text, out var kind), Is.True, text);
        Assert.That(kind, Is.EqualTo(expected));
    }

    [Test]
    public void EveryMechanismsKebabNameParsesBackToIt()
    {
        foreach (var kind in Enum.GetValues<StressMechanismKind>())
        {
            var name = StressMechanismNames.Of(kind);
            Assert.That(name, Does.Match("^[a-z]+(-[a-z]+)*$"), kind.ToString());
            Assert.That(StressMechanismNames.TryParse(name, out var parsed) && parsed == kind, Is.True, name);
        }

        Assert.That(StressMechanismNames.TryParse("", out _), Is.False);
        Assert.That(StressMechanismNames.TryParse("thp", out _), Is.False);
    }

    [Test]
    [Category(TestCategories.Stress)]
    [Explicit("a 10-minute soak: dotnet test tests/Vmm.Tests -c Release --filter \"TestCategory=Stress&FullyQualifiedName~StressDemoTests\"")]
    public void TenMinutesOfEveryMechanismStayClean()
    {
        var seed = Environment.TickCount & int.MaxValue;
        TestContext.Out.WriteLine($"seed {seed}");
        var result = new StressDemo(new StressDemoOptions
        {
            Duration = TimeSpan.FromMinutes(10),
            Seed = seed,
            Vcpus = 2,
            GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("stress")),
        }).Run();
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, result.Mechanisms.Select(m => $"{m.Name}: {m.Operations} {m.OperationName}, {m.Effect} {m.EffectName}; {m.Detail}")));

        Assert.That(result.Succeeded, Is.True, $"seed {seed}: {StressDemoReport.Failure(result)}");
    }
}
