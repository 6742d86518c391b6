using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Vmas;

/// <summary>Addresses and helpers shared by the VMA tests.</summary>
internal static class VmaTestSupport
{
    public const ulong Page = Paging.PageSize;

    /// <summary>A typical mmap base; page n of the test area is <c>Base + n * Page</c>.</summary>
    public static readonly Hva Base = new(0x7f00_0000_0000);

    public static Hva P(ulong page) => Base + (page * Page);

    public static (Hva Start, Hva End)[] Ranges(IEnumerable<Vma> vmas) => vmas.Select(v => (v.Start, v.End)).ToArray();
}
