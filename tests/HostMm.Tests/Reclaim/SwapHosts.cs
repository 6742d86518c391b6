using Hypervisor.Notifier;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>Hosts with swap for reclaim tests: audit-poisoned frames, a small swap device, a limited cgroup.</summary>
internal static class SwapHosts
{
    public const ulong Page = 4096;

    public static Host Create(SwapDeviceKind kind = SwapDeviceKind.Zram, ulong swapMegabytes = 16, SwapFaultInjection? faults = null, ReclaimOptions? reclaim = null, ulong megabytes = 64, bool directIo = false) =>
        new(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = megabytes << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = kind, SizeBytes = swapMegabytes << 20, FaultInjection = faults, DirectIo = directIo },
            Reclaim = reclaim ?? new ReclaimOptions(),
        });

    /// <summary>A process in a fresh cgroup limited to <paramref name="limitPages"/>.</summary>
    public static Mm LimitedProcess(Host host, long limitPages, string name = "test") =>
        host.CreateMm(0, host.Reclaim.CreateCgroup(name, limitPages));

    /// <summary>Fills <paramref name="pages"/> pages from <paramref name="start"/> with a pattern that names each page.</summary>
    public static void WritePattern(Mm mm, Hva start, int pages, int seed)
    {
        for (var page = 0; page < pages; page++)
        {
            mm.Write(start + ((ulong)page * Page), PageData(page, seed));
        }
    }

    /// <summary>Reads every page back and returns the indices of those whose contents are wrong.</summary>
    public static List<int> CorruptPages(Mm mm, Hva start, int pages, int seed)
    {
        var wrong = new List<int>();
        var buffer = new byte[Page];
        for (var page = 0; page < pages; page++)
        {
            mm.Read(start + ((ulong)page * Page), buffer);
            if (!buffer.AsSpan().SequenceEqual(PageData(page, seed)))
            {
                wrong.Add(page);
            }
        }

        return wrong;
    }

    public static byte[] PageData(int page, int seed)
    {
        var bytes = new byte[Page];
        new Random((seed * 1_000_003) + page).NextBytes(bytes);
        BitConverter.TryWriteBytes(bytes, page);
        return bytes;
    }

    public static void AssertConsistent(Host host)
    {
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }

    /// <summary>How many of <paramref name="pages"/> pages from <paramref name="start"/> are swap entries now.</summary>
    public static int SwappedPages(Mm mm, Hva start, int pages)
    {
        var swapped = 0;
        for (var page = 0; page < pages; page++)
        {
            var pte = mm.PageTable.Read(start + ((ulong)page * Page));
            if (!pte.IsNone && !pte.IsPresent && Hypervisor.HostMm.PageTables.HostPteEncoding.Classify(pte) == Hypervisor.HostMm.PageTables.HostPteKind.Swap)
            {
                swapped++;
            }
        }

        return swapped;
    }
}
