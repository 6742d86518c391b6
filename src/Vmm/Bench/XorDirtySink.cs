using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Bench;

/// <summary>A dirty sink that does the least a real one does: touch each report (so nothing is optimised away).</summary>
public struct XorDirtySink : IDirtyPfnSink
{
    /// <summary>XOR of every reported pfn + gfn.</summary>
    public ulong Checksum;

    /// <summary>Reports received.</summary>
    public long Reports;

    /// <inheritdoc/>
    public void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
        Checksum ^= pfn.Value + gfn.Value;
        Reports++;
    }
}
