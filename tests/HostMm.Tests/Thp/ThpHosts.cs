using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>Hosts with transparent huge pages and helpers for 2 MiB-aligned regions.</summary>
internal static class ThpHosts
{
    public const ulong Page = 4096;
    public const ulong HugeBytes = 2UL << 20;

    public static Host Create(ThpMode mode = ThpMode.Always, ulong megabytes = 64) => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = megabytes << 20, AuditFreedFrames = true },
        TransparentHugePages = mode,
    });

    /// <summary>Maps <paramref name="hugePages"/> × 2 MiB plus slack and returns the first 2 MiB-aligned address inside.</summary>
    public static Hva MapAligned(Mm mm, int hugePages)
    {
        var start = mm.Mmap(((ulong)hugePages + 1) * HugeBytes, Protection.Read | Protection.Write);
        return new Hva((start.Value + HugeBytes - 1) & ~(HugeBytes - 1));
    }

    /// <summary>Writes a pattern naming (seed, page) at the start and end of every 4 KiB page of [start, start + pages × 4 KiB).</summary>
    public static void Stamp(Mm mm, Hva start, int pages, int seed)
    {
        for (var i = 0; i < pages; i++)
        {
            var address = start + ((ulong)i * Page);
            mm.Write(address, BitConverter.GetBytes((seed * 1_000_003L) + i));
            mm.Write(address + Page - 8, BitConverter.GetBytes(~((seed * 1_000_003L) + i)));
        }
    }

    /// <summary>The indices of pages whose stamp is wrong.</summary>
    public static List<int> Unstamped(Mm mm, Hva start, int pages, int seed)
    {
        var wrong = new List<int>();
        var buffer = new byte[8];
        for (var i = 0; i < pages; i++)
        {
            var address = start + ((ulong)i * Page);
            mm.Read(address, buffer);
            var head = BitConverter.ToInt64(buffer);
            mm.Read(address + Page - 8, buffer);
            if (head != (seed * 1_000_003L) + i || BitConverter.ToInt64(buffer) != ~head)
            {
                wrong.Add(i);
            }
        }

        return wrong;
    }

    public static void AssertConsistent(Host host)
    {
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }
}
