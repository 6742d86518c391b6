using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>
/// <c>hv run --trace FILE</c>: the file is a well-formed Chrome trace (every event with its phase's fields, spans
/// nested per track, timestamps in order per track, every track named), holds the MMU's and the host's spans and the
/// counter tracks, survives a ring that wraps, and a bad path or size is one <c>hv: error:</c> line and exit 2.
/// </summary>
public sealed class RunTraceTests
{
    private string _folder = string.Empty;

    [SetUp]
    public void SetUp()
    {
        _folder = Path.Combine(Path.GetTempPath(), "hv-trace-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_folder, recursive: true);

    [Test]
    [Category(TestCategories.Guest)]
    public void TheAcceptanceRunUnderHostMemoryPressureWritesAWellFormedTimeline()
    {
        var path = Path.Combine(_folder, "t.json");

        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "--host-mem", "64M", "-m", "256M", "--cmdline", "mib=64", "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(trace.Dropped, Is.Zero);
            Assert.That(trace.Phase("X").Count() + trace.Phase("i").Count() + trace.Phase("C").Count(), Is.EqualTo(trace.Recorded), "every recorded event is in the file");
            foreach (var span in new[] { "kvm_page_fault", "kvm_unmap_hva_range", "mmu_notifier_invalidate_range", "kvm_flush_remote_tlbs", "mm_vmscan_kswapd" })
            {
                Assert.That(trace.Named(span).Where(e => e.GetProperty("ph").GetString() == "X"), Is.Not.Empty, span);
            }

            var counters = trace.Phase("C").Select(e => e.GetProperty("name").GetString()).Distinct().ToList();
            Assert.That(counters, Is.SupersetOf(new[] { "memory", "sptes", "swap" }));
            var swapped = trace.Named("memory").Max(e => e.GetProperty("args").GetProperty("swapped").GetInt64());
            Assert.That(swapped, Is.Positive, "64 MiB of guest data under a 64 MiB limit swaps");
            var threadNames = trace.Phase("M").Where(e => e.GetProperty("name").GetString() == "thread_name")
                .Select(e => e.GetProperty("args").GetProperty("name").GetString()).ToHashSet();
            Assert.That(threadNames, Is.SupersetOf(new[] { "vcpu0", "kswapd" }));
            var faultThreads = trace.Named("kvm_page_fault").Select(e => e.GetProperty("tid").GetInt32()).Distinct().ToList();
            var zapThreads = trace.Named("mm_vmscan_kswapd").Select(e => e.GetProperty("tid").GetInt32()).Distinct().ToList();
            Assert.That(faultThreads, Has.None.AnyOf(zapThreads.Cast<object>().ToArray()), "vCPU faults and kswapd are separate tracks");
            Assert.That(result.StderrLines, Has.Some.Contains(path), "the run says where the trace went");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ARingThatWrapsDropsTheOldestEventsAndSaysHowManyInOtherData()
    {
        var path = Path.Combine(_folder, "small.json");

        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "--host-mem", "64M", "-m", "128M", "--cmdline", "mib=32", "--trace", path, "--trace-size", "500");

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        var kept = trace.Events.Count(e => e.GetProperty("ph").GetString() != "M");
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(kept, Is.LessThanOrEqualTo(500));
            Assert.That(trace.Dropped, Is.Positive);
            Assert.That(kept + trace.Dropped, Is.EqualTo(trace.Recorded));
            Assert.That(trace.Root.GetProperty("otherData").GetProperty("capacity").GetInt32(), Is.EqualTo(500));
            Assert.That(result.StderrLines, Has.Some.Contains("dropped"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void SeveralVmsAreOneTraceProcessEachBesideTheHost()
    {
        var path = Path.Combine(_folder, "vms.json");

        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--vms", "2", "--trace", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
        var trace = TraceFile.Load(path);
        var processes = trace.Phase("M").Where(e => e.GetProperty("name").GetString() == "process_name")
            .ToDictionary(e => e.GetProperty("pid").GetInt32(), e => e.GetProperty("args").GetProperty("name").GetString());
        var faultPids = trace.Named("kvm_page_fault").Select(e => e.GetProperty("pid").GetInt32()).Distinct().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
            Assert.That(processes.Values, Is.SupersetOf(new[] { "host", "vm0", "vm1" }));
            Assert.That(faultPids, Has.Count.EqualTo(2), "each VM's faults are under its own process");
            Assert.That(faultPids.Select(p => processes[p]), Is.EquivalentTo(new[] { "vm0", "vm1" }));
        });
    }

    [TestCase("", "it is a folder")]
    [TestCase("notes.txt/t.json", "cannot be created")]
    [TestCase("missing/t.json", "cannot be created")]
    public void ATracePathThatCannotBeCreatedIsOneErrorLineAndExitTwo(string relative, string reason)
    {
        File.WriteAllText(Path.Combine(_folder, "notes.txt"), "notes");
        var path = relative.Length == 0 ? _folder : Path.Combine(_folder, relative);

        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--trace", path);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: --trace " + path).And.Contain(reason));
            Assert.That(result.Stdout, Is.Empty, "the guest did not run");
            Assert.That(Directory.GetFileSystemEntries(_folder), Has.Length.EqualTo(1), "nothing was created");
        });
    }

    [TestCase("0")]
    [TestCase("15")]
    [TestCase("99999999999")]
    [TestCase("many")]
    public void ATraceSizeOutOfRangeIsOneErrorLineAndExitTwo(string size)
    {
        var path = Path.Combine(_folder, "t.json");

        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--trace", path, "--trace-size", size);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error:").And.Contain("--trace-size"));
            Assert.That(File.Exists(path), Is.False, "no trace file");
        });
    }

    [Test]
    public void ATraceSizeWithoutATraceIsOneErrorLineAndExitTwo()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--trace-size", "1000");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: --trace-size needs --trace"));
        });
    }
}
