using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>A dirty sink that does the least a real one does: touch each report (so nothing is optimised away).</summary>
internal struct XorDirtySink : IDirtyPfnSink
{
    public ulong Checksum;
    public long Reports;

    public void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
        Checksum ^= pfn.Value + gfn.Value;
        Reports++;
    }
}
