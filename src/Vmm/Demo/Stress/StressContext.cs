using Hypervisor.HostMm;
using Hypervisor.Vmm.Machine;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>What the mechanisms act on: the VM, its host and process, and the demo's view of guest RAM.</summary>
/// <param name="Vm">The VM under stress.</param>
/// <param name="Memory">The demo's memslots and host accesses of guest RAM.</param>
/// <param name="Gate">Orders the mechanisms' operations against audits and remaps.</param>
internal sealed record StressContext(Vm Vm, StressGuestMemory Memory, HostOperationGate Gate)
{
    /// <summary>The simulated host.</summary>
    public Host Host => Vm.Host!;

    /// <summary>The VM's host process.</summary>
    public HostProcess Process => Vm.Process!;

    /// <summary>The MADV_DONTNEED announcements for the DMA buffers' chunk (the guest's data pages have their own counters).</summary>
    public DmaDiscardSequence DmaDiscards { get; } = new();
}
