using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>Hosts, layouts and scan drivers for the KSM tests.</summary>
internal static class KsmHosts
{
    public const ulong Page = 4096;

    public static Host Create(ulong megabytes = 64, bool legacyChangePte = false) => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = megabytes << 20, AuditFreedFrames = true },
        LegacyChangePte = legacyChangePte,
    });

    /// <summary>Maps <paramref name="pages"/> pages, marks them mergeable and writes page i with <paramref name="contentOf"/>(i).</summary>
    public static Hva MapMergeable(Mm mm, int pages, Func<int, int> contentOf)
    {
        var start = mm.Mmap((ulong)pages * Page, Protection.Read | Protection.Write);
        for (var i = 0; i < pages; i++)
        {
            mm.Write(start + ((ulong)i * Page), PageOf(contentOf(i)));
        }

        mm.Madvise(start, (ulong)pages * Page, Advice.Mergeable);
        return start;
    }

    /// <summary>A page of content <paramref name="seed"/>: random bytes from that seed (0 is all zeroes).</summary>
    public static byte[] PageOf(int seed)
    {
        var bytes = new byte[Page];
        if (seed != 0)
        {
            new Random(seed).NextBytes(bytes);
        }

        return bytes;
    }

    public static byte[] Read(Mm mm, Hva address)
    {
        var bytes = new byte[Page];
        mm.Read(address, bytes);
        return bytes;
    }

    /// <summary>
    /// Steps the scanner (run = merge) until <paramref name="scans"/> more full scans completed, or until it has nothing
    /// left to scan (no process on its list: steps scan nothing and no pass ends).
    /// </summary>
    public static void FullScans(Host host, int scans = 2)
    {
        host.Ksm.Run = KsmRunMode.Merge;
        var target = host.Ksm.Stats.FullScans + scans;
        var guard = 0;
        var idle = 0;
        while (host.Ksm.Stats.FullScans < target)
        {
            var before = host.Ksm.Stats.FullScans;
            idle = host.Ksm.Step(1000) == 0 && host.Ksm.Stats.FullScans == before ? idle + 1 : 0;
            if (idle > 3)
            {
                return;
            }

            Assert.That(++guard, Is.LessThan(100_000), "the scanner never completed a full scan");
        }
    }

    /// <summary>The frame <paramref name="address"/> maps now (the PTE must be present).</summary>
    public static Pfn FrameAt(Mm mm, Hva address)
    {
        var pte = mm.PageTable.Read(address);
        Assert.That(pte.IsPresent, Is.True, $"{address} is not present: {pte}");
        return pte.Pfn;
    }

    public static bool IsKsm(Host host, Mm mm, Hva address) => host.Memory.Frame(FrameAt(mm, address)).Has(FrameFlags.Ksm);

    /// <summary>The host audit plus the KSM invariants of a settled scanner.</summary>
    public static void AssertSettled(Host host)
    {
        var violations = HostMmAuditor.CheckKsmSettled(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }

    public static void AssertConsistent(Host host)
    {
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }
}
