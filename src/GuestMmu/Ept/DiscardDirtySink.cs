namespace Hypervisor.GuestMmu.Ept;

/// <summary>A sink that drops dirty reports: for teardown, when the host memory goes away with the VM.</summary>
internal struct DiscardDirtySink : IDirtyPfnSink
{
    /// <inheritdoc />
    public readonly void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
    }
}
