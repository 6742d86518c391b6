namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// A memslot and the guest frames <c>[Start, End)</c> of it that a host range touched (KVM's
/// <c>struct kvm_gfn_range</c>): what a notifier handler zaps or ages.
/// </summary>
/// <param name="Slot">The memslot.</param>
/// <param name="Start">First guest frame of the range, inside the slot.</param>
/// <param name="End">Guest frame after the range, at most <see cref="Memslot.EndGfn"/>.</param>
public readonly record struct MemslotGfnRange(Memslot Slot, Gfn Start, Gfn End)
{
    /// <summary>Number of guest frames in the range.</summary>
    public ulong Pages => End - Start;
}
