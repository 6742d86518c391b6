using System.Text.Json;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Tests.Support;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>
/// <c>--trace FILE</c> on every demo, in short forms: each file is a well-formed timeline (<see cref="TraceFile"/>)
/// with the demo's own spans — script steps and invalidations (host), swap I/O requests (swap), single KSM merges
/// (ksm), page migrations with their nodes (migrate), huge page splits and collapses (thp) — and its counter tracks;
/// and the options are checked as <c>hv run</c>'s are.
/// </summary>
public sealed class DemoTraceTests
{
    private string _folder = string.Empty;

    private static string Guests => Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;

    [SetUp]
    public void SetUp()
    {
        _folder = Path.Combine(Path.GetTempPath(), "hv-demo-trace-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_folder, recursive: true);

    [Test]
    public void TheHostDemoTimelineShowsEachScriptStepAroundItsInvalidations()
    {
        var path = Path.Combine(_folder, "host.json");

        var result = Hv.Run("demo", "--plain", "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        var steps = Spans(trace, "demo_step").ToList();
        var invalidations = Spans(trace, "mmu_notifier_invalidate_range").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(steps.Select(s => s.GetProperty("args").GetProperty("step").GetString()), Has.Some.StartsWith("mprotect(pages 8-15"));
            Assert.That(invalidations, Is.Not.Empty);
            Assert.That(invalidations.Count(i => steps.Any(s => Encloses(s, i))), Is.GreaterThan(invalidations.Count / 2), "most invalidations happen inside a script step, on its track");
            Assert.That(result.StderrLines, Has.Some.Contains(path));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheSwapDemoTimelineShowsSwapWritesAndReadsWithTheirSlotsAndBytes()
    {
        var recorder = new TraceRecorder();
        var memtest = new SwapDemo(new SwapDemoOptions
        {
            MemtestGuestBytes = 16UL << 20,
            MemtestHostBytes = 4UL << 20,
            SwapDevice = SwapDeviceKind.Zram,
            GuestsFolder = Guests,
            AuditEveryBatch = false,
            Trace = recorder,
        }).RunMemtest();
        var trace = Written(recorder, "swap.json");

        var writes = Spans(trace, "swap_writepage").ToList();
        var reads = Spans(trace, "swap_readpage").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(memtest.GuestVerdict, Does.StartWith("memtest: OK"));
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(writes.Sum(w => Arg(w, "pages")), Is.GreaterThanOrEqualTo(memtest.Reclaim.Pswpout), "every page swapped out is in a write request (zero-filled ones, kept without device I/O, are not in pswpout)");
            Assert.That(reads.Sum(r => Arg(r, "pages")), Is.GreaterThanOrEqualTo(memtest.Reclaim.Pswpin), "every page swapped in came in a read request (read-ahead may read more)");
            Assert.That(writes.Sum(w => Arg(w, "bytes")), Is.EqualTo(memtest.Reclaim.Pswpout * 4096), "a write request's bytes are its pages that went to the device");
            Assert.That(reads.Sum(r => Arg(r, "bytes")), Is.EqualTo(memtest.Reclaim.Pswpin * 4096), "a read request's bytes are its pages that came from the device");
            Assert.That(writes.Concat(reads).All(s => Arg(s, "bytes") % 4096 == 0 && Arg(s, "bytes") <= Arg(s, "pages") * 4096), Is.True);
            Assert.That(writes, Has.Some.Matches<JsonElement>(w => Arg(w, "pages") > 1), "pageout writes runs of slots");
            Assert.That(trace.Named("swap").Max(c => Arg(c, "pswpout")), Is.Positive, "the host's swap counter track");
        });
    }

    [Test]
    public void SwapRequestsCountEveryPageButGiveBytesOnlyForThePagesTheDeviceHolds()
    {
        const int pages = 64;
        var data = new byte[pages * 4096];
        for (var page = 0; page < pages; page += 2)
        {
            data.AsSpan(page * 4096, 4096).Fill((byte)(page + 1)); // every other page zero-filled
        }

        var recorder = new TraceRecorder();
        using (var rig = new Hypervisor.Vmm.Bench.SwapBenchRig((ulong)data.Length, "trace-same-filled"))
        {
            rig.Host.Trace = new TracingHostTrace(recorder);
            rig.MakeResidentAndDirty(data, throughEpt: false);
            rig.Vm.Mm.Madvise(rig.Vm.Ram, (ulong)data.Length, Hypervisor.HostMm.Advice.PageOut);
            rig.FaultIn(throughEpt: false);
        }

        var trace = Written(recorder, "same-filled.json");
        var writes = Spans(trace, "swap_writepage").ToList();
        var reads = Spans(trace, "swap_readpage").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(writes.Sum(w => Arg(w, "pages")), Is.EqualTo(pages), "every page is in a write request");
            Assert.That(writes.Sum(w => Arg(w, "bytes")), Is.EqualTo(pages / 2 * 4096), "only the non-zero half went to the device");
            Assert.That(reads.Sum(r => Arg(r, "pages")), Is.EqualTo(pages), "every page came back in a read request");
            Assert.That(reads.Sum(r => Arg(r, "bytes")), Is.EqualTo(pages / 2 * 4096), "the zero-filled half came back without device I/O");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheKsmDemoTimelineShowsKsmdBatchesEachMergeAndMergedPages()
    {
        var path = Path.Combine(_folder, "ksm.json");

        var result = Hv.Run("demo", "ksm", "--plain", "--vms", "2", "-m", "16M", "--pages", "256", "--sleep", "0", "--guests", Guests, "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(Spans(trace, "ksm_scan"), Is.Not.Empty);
            var merges = trace.Named("ksm_scan").Sum(e => Arg(e, "merges"));
            Assert.That(merges, Is.Positive);
            Assert.That(Spans(trace, "ksm_merge_one_page").Count(), Is.EqualTo(merges), "one span per merge that ksmd's batches counted");
            Assert.That(Spans(trace, "ksm_merge_one_page").Select(e => e.GetProperty("pid").GetInt32()).Distinct().Count(), Is.EqualTo(2), "each merge is on the track of the VM whose page it was");
            var mergedPids = trace.Named("memory").Where(e => Arg(e, "merged") > 0).Select(e => e.GetProperty("pid").GetInt32()).Distinct();
            Assert.That(mergedPids.Count(), Is.EqualTo(2), "both VMs had pages merged");
            Assert.That(trace.Named("ksm").Max(c => Arg(c, "pages_sharing")), Is.Positive, "the host's KSM counter track");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheMigrateDemoTimelineShowsPageMigrationsBetweenTheNodesBothWays()
    {
        var path = Path.Combine(_folder, "migrate.json");

        var result = Hv.Run("demo", "migrate", "--plain", "-m", "8M", "--pages", "512", "--kinds", "4", "--every", "4", "--passes", "3", "--trips", "4", "--guests", Guests, "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        var migrated = Spans(trace, "mm_migrate_pages").Where(e => e.GetProperty("args").GetProperty("result").GetString() == "migrated").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(migrated.Count(e => Arg(e, "from") == 0 && Arg(e, "to") == 1), Is.GreaterThanOrEqualTo(2 * 512), "two trips move every guest page to node 1");
            Assert.That(migrated.Count(e => Arg(e, "from") == 1 && Arg(e, "to") == 0), Is.GreaterThanOrEqualTo(2 * 512), "and two bring them back");
            Assert.That(migrated.Select(e => e.GetProperty("pid").GetInt32()).Distinct(), Is.EqualTo(new[] { TraceRecorder.VmPid(0) }), "on the VM's track");
            Assert.That(trace.Named("migrate").Max(c => Arg(c, "pgmigrate_success")), Is.GreaterThanOrEqualTo(1024), "the host's migration counter track");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheThpDemoTimelineShowsHugePageSplitsAndCollapses()
    {
        var path = Path.Combine(_folder, "thp.json");

        var result = Hv.Run("demo", "thp", "--plain", "-m", "8M", "--pages", "512", "--kinds", "4", "--every", "4", "--passes", "1", "--guests", Guests, "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(Spans(trace, "split_huge_pmd"), Is.Not.Empty);
            Assert.That(Spans(trace, "mm_collapse_huge_page").Where(e => e.GetProperty("args").GetProperty("result").GetString() == "Collapsed"), Is.Not.Empty);
            Assert.That(trace.Named("thp").Max(c => Arg(c, "huge_leaves")), Is.Positive, "the VM's huge-leaves counter track");
        });
    }

    [TestCase("host")]
    [TestCase("swap")]
    [TestCase("migrate")]
    [TestCase("thp")]
    public void EveryDemoRefusesATraceItCannotWriteAndASizeWithoutATrace(string demo)
    {
        var folder = Hv.Run("demo", demo, "--plain", "--trace", _folder);
        var sizeAlone = Hv.Run("demo", demo, "--plain", "--trace-size", "100");

        Assert.Multiple(() =>
        {
            Assert.That(folder.ExitCode, Is.EqualTo(2), folder.Stdout + folder.Stderr);
            Assert.That(folder.StderrLines, Has.Exactly(1).StartsWith("hv: error: --trace"));
            Assert.That(sizeAlone.ExitCode, Is.EqualTo(2), sizeAlone.Stdout + sizeAlone.Stderr);
            Assert.That(sizeAlone.StderrLines, Has.Exactly(1).StartsWith("hv: error: --trace-size needs --trace"));
        });
    }

    private static IEnumerable<JsonElement> Spans(TraceFile trace, string name) =>
        trace.Named(name).Where(e => e.GetProperty("ph").GetString() == "X");

    private static long Arg(JsonElement e, string name) => e.GetProperty("args").GetProperty(name).GetInt64();

    private static bool Encloses(JsonElement outer, JsonElement inner)
    {
        static double Ts(JsonElement e) => e.GetProperty("ts").GetDouble();
        static double End(JsonElement e) => Ts(e) + e.GetProperty("dur").GetDouble();
        return outer.GetProperty("tid").GetInt32() == inner.GetProperty("tid").GetInt32()
            && outer.GetProperty("pid").GetInt32() == inner.GetProperty("pid").GetInt32()
            && Ts(outer) <= Ts(inner) + 0.0015 && End(inner) <= End(outer) + 0.0015;
    }

    private TraceFile Written(TraceRecorder recorder, string name)
    {
        var path = Path.Combine(_folder, name);
        using (var file = File.Create(path))
        {
            ChromeTraceWriter.Write(file, recorder);
        }

        return TraceFile.Load(path);
    }
}
