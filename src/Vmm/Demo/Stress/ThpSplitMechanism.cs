using System.Globalization;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// Transparent huge page splits: in the first chunk mapped by a host huge leaf, one of its 4 KiB pages is mprotected
/// read-write to read-write — nothing a guest access could notice, but the huge leaf is split to 512 PTEs (and its
/// 2 MiB spte zapped).
/// </summary>
internal sealed class ThpSplitMechanism(StressContext context) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.ThpSplit;

    public override string Name => "THP split";

    public override string OperationName => "looks at a chunk";

    public override string EffectName => "huge pages split";

    public override string Detail => string.Create(CultureInfo.InvariantCulture, $"{context.Process.ThpStats.ThpFaultAlloc:N0} huge faults, {context.Process.ThpStats.ThpSplitPmd:N0} splits by every cause");

    /// <summary>Splits the first huge-mapped chunk from the drawn one on (in chunk order, wrapping), if any is.</summary>
    protected override void Execute(in StressOperation operation, CancellationToken stop)
    {
        var chunks = context.Memory.Layout.HostChunks;
        for (var i = 0; i < chunks; i++)
        {
            var chunk = context.Memory.ChunkHva((operation.Chunk + i) % chunks);
            if (!context.Process.PageTable.IsHugeMapped(chunk))
            {
                continue;
            }

            context.Process.Mprotect(chunk + ((ulong)operation.Page * Paging.PageSize), Paging.PageSize, Protection.Read | Protection.Write);
            if (!context.Process.PageTable.IsHugeMapped(chunk))
            {
                AddEffect(1);
            }

            return;
        }
    }
}
