using Hypervisor.Notifier;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>Two-node hosts for migration tests and page helpers.</summary>
internal static class MigrationHosts
{
    public const ulong Page = 4096;

    public static Host Create(ulong megabytes = 64, int nodes = 2) => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = megabytes << 20, NodeCount = nodes, AuditFreedFrames = true },
    });

    /// <summary>A process on node 0 with <paramref name="pages"/> written pages (the pattern of <see cref="Reclaim.SwapHosts.PageData"/>).</summary>
    public static (Mm Mm, Hva Start) Populated(Host host, int pages, int seed, int node = 0)
    {
        var mm = host.CreateMm(node);
        var start = mm.Mmap((ulong)pages * Page, Protection.Read | Protection.Write);
        Reclaim.SwapHosts.WritePattern(mm, start, pages, seed);
        return (mm, start);
    }

    /// <summary>The node of the frame mapped at <paramref name="address"/> (present or PROT_NONE).</summary>
    public static int NodeOfPage(Mm mm, Hva address)
    {
        var pte = mm.PageTable.Read(address);
        Assert.That(pte.IsPresent || HostPteEncoding.Classify(pte) == HostPteKind.ProtNone, Is.True, $"{address} maps nothing: {HostPteEncoding.Describe(pte)}");
        return mm.Host.Memory.NodeOf(pte.Pfn);
    }

    public static Hva[] Pages(Hva start, int count) => [.. Enumerable.Range(0, count).Select(i => start + ((ulong)i * Page))];

    public static Notifier.Tracing.NotifierEventRecorder Record(Mm mm) => Processes.TestHosts.Record(mm);

    public static string Timeline(Notifier.Tracing.NotifierEventRecorder recorder, Mm mm) => Processes.TestHosts.Timeline(recorder, mm);

    public static void WritePattern(Mm mm, Hva start, int pages, int seed) => Reclaim.SwapHosts.WritePattern(mm, start, pages, seed);

    public static List<int> CorruptPages(Mm mm, Hva start, int pages, int seed) => Reclaim.SwapHosts.CorruptPages(mm, start, pages, seed);

    public static void AssertConsistent(Host host)
    {
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }
}
