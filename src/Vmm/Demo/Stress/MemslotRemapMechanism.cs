using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// munmap and re-mmap of guest RAM through memslot changes: a 2 MiB chunk's contents are copied into a new mapping,
/// its memslot is deleted (every spte of it zapped), the old mapping unmapped and the memslot created over the new one,
/// with every vCPU paused and nothing else of the demo in flight (<see cref="StressGuestMemory.Remap"/>).
/// </summary>
internal sealed class MemslotRemapMechanism(StressContext context) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.MemslotRemap;

    public override string Name => "munmap + re-mmap (memslots)";

    public override string OperationName => "chunks remapped";

    public override string EffectName => "memslot zaps";

    public override long Effect => context.Vm.Mmu!.Stats.MemslotZaps;

    public override string Detail => string.Create(CultureInfo.InvariantCulture, $"{context.Memory.Remaps:N0} memslots deleted and created again over a new mapping");

    protected override bool Exclusive => true;

    protected override void Execute(in StressOperation operation, CancellationToken stop) => context.Memory.Remap(operation.Chunk);
}
