using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Memslots;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>The result of one EPT violation.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Spte">The spte now mapping the frame (for <see cref="EptFaultOutcome.Installed"/> and <see cref="EptFaultOutcome.AlreadyMapped"/>).</param>
/// <param name="Retries">How many times the invalidation-retry protocol made the fault start again.</param>
/// <param name="Slot">The memslot that covers the address, if any.</param>
public readonly record struct EptFaultResult(EptFaultOutcome Outcome, Spte Spte, int Retries, Memslot? Slot)
{
    /// <summary>For <see cref="EptFaultOutcome.OutOfMemory"/> and <see cref="EptFaultOutcome.MemoryFailure"/>: what the backing said.</summary>
    public string? Detail { get; init; }
}
