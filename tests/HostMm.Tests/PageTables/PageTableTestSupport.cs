using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.PageTables;

/// <summary>Host RAM and helpers for page-table tests.</summary>
public static class PageTableTestSupport
{
    public const ulong Page = 4096;
    public const ulong TwoMiB = 2UL << 20;
    public const ulong OneGiB = 1UL << 30;
    public const ulong FiveTwelveGiB = 1UL << 39;

    /// <summary>64 MiB, 2 nodes.</summary>
    public static HostMemory CreateMemory() =>
        new(new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2 });

    public static Hva At(ulong address) => new(address);

    /// <summary>Writes <paramref name="value"/> at <paramref name="address"/> under its PTE lock, populating tables.</summary>
    public static void Set(HostPageTable table, ulong address, HostPte value)
    {
        Assert.That(table.TryLock(new Hva(address), allocate: true, out var pte), Is.True);
        using (pte)
        {
            pte.Value = value;
        }
    }

    /// <summary>A present, writable entry whose pfn encodes <paramref name="tag"/> (no real frame behind it).</summary>
    public static HostPte Tagged(ulong tag) => HostPte.Present(new Pfn(tag), HostPte.WritableBit | HostPte.UserBit);

    /// <summary>The PTE table frame mapping <paramref name="address"/>, found without locks by reading the frames (asserts it exists).</summary>
    public static unsafe Pfn PteTableOf(HostPageTable table, Hva address) // unsafe: reads table frames directly, independent of the code under test.
    {
        var pfn = table.RootPfn;
        for (var shift = 39; shift >= 21; shift -= 9)
        {
            var entry = new HostPte(((ulong*)table.Memory.FrameAddress(pfn))[(address.Value >> shift) & 511]);
            Assert.That(entry.IsPresent, Is.True, $"no table below level {shift} for {address}");
            pfn = entry.Pfn;
        }

        return pfn;
    }
}
