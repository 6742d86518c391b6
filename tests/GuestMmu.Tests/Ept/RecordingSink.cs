using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>Records every dirty report in order.</summary>
internal struct RecordingSink() : IDirtyPfnSink
{
    public List<(Gfn Gfn, Pfn Pfn, int Level)> Reports { get; } = [];

    public readonly void MarkDirty(Gfn gfn, Pfn pfn, int level) => Reports.Add((gfn, pfn, level));
}
