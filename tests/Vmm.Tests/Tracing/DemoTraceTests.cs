using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary><c>hv demo ksm --trace FILE</c>: a well-formed timeline with ksmd's batches and the merged-pages counter of each VM.</summary>
public sealed class DemoTraceTests
{
    [Test]
    [Category(TestCategories.Guest)]
    public void TheKsmDemoTimelineShowsKsmdBatchesAndMergedPages()
    {
        var path = Path.Combine(Path.GetTempPath(), "hv-ksm-trace-" + Guid.NewGuid().ToString("N") + ".json");
        try
        {
            var guests = Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;
            var result = Hv.Run("demo", "ksm", "--plain", "--vms", "2", "-m", "16M", "--pages", "256", "--sleep", "0", "--guests", guests, "--trace", path);

            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            var trace = TraceFile.Load(path);
            Assert.Multiple(() =>
            {
                Assert.That(trace.Problems, Is.Empty, string.Join(Environment.NewLine, trace.Problems.Take(10)));
                Assert.That(trace.Named("ksm_scan").Where(e => e.GetProperty("ph").GetString() == "X"), Is.Not.Empty);
                Assert.That(trace.Named("ksm_scan").Sum(e => e.GetProperty("args").GetProperty("merges").GetInt64()), Is.Positive);
                var mergedPids = trace.Named("memory").Where(e => e.GetProperty("args").GetProperty("merged").GetInt64() > 0)
                    .Select(e => e.GetProperty("pid").GetInt32()).Distinct();
                Assert.That(mergedPids.Count(), Is.EqualTo(2), "both VMs had pages merged");
            });
        }
        finally
        {
            File.Delete(path);
        }
    }
}
