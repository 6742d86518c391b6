namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// The outcome of one <see cref="MemslotSet.SetRegion"/> call: what changed, the slot before and after, and the
/// generation that the change produced.
/// </summary>
/// <remarks>
/// The set only publishes the new memslots; it never touches sptes. The caller (the MMU) must do what KVM's
/// <c>kvm_arch_flush_shadow_memslot</c> and <c>kvm_mmu_slot_apply_flags</c> do: for
/// <see cref="MemslotChangeKind.Deleted"/> and <see cref="MemslotChangeKind.Moved"/>, zap every spte of
/// <see cref="Old"/>'s guest range (<see cref="RequiresZap"/>); for <see cref="MemslotChangeKind.FlagsChanged"/>
/// that turns dirty logging on, write-protect the slot's sptes.
/// </remarks>
public sealed class MemslotChange
{
    internal MemslotChange(MemslotChangeKind kind, Memslot? old, Memslot? @new, long generation)
    {
        Kind = kind;
        Old = old;
        New = @new;
        Generation = generation;
    }

    /// <summary>What the call did.</summary>
    public MemslotChangeKind Kind { get; }

    /// <summary>
    /// The slot as it was before the call: null for <see cref="MemslotChangeKind.Created"/> and for a no-op
    /// delete of an unknown slot; for other no-ops, the unchanged slot.
    /// </summary>
    public Memslot? Old { get; }

    /// <summary>
    /// The slot as it is after the call: null for <see cref="MemslotChangeKind.Deleted"/> and for a no-op
    /// delete; for other no-ops, the unchanged slot (the same object as <see cref="Old"/>).
    /// </summary>
    public Memslot? New { get; }

    /// <summary>The set's generation after the call (unchanged by a no-op).</summary>
    public long Generation { get; }

    /// <summary>
    /// True for a delete or a move: every spte of <see cref="Old"/>'s guest range now maps a frame the
    /// memslots no longer lead to, and the caller must zap them all before the guest can rely on the change.
    /// </summary>
    public bool RequiresZap => Kind is MemslotChangeKind.Deleted or MemslotChangeKind.Moved;

    /// <summary>A one-line description.</summary>
    public override string ToString() =>
        $"{Kind} gen {Generation}: {Old?.ToString() ?? "(none)"} => {New?.ToString() ?? "(none)"}";
}
