using System.Globalization;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>Page migration: a 2 MiB chunk of the guest's data moved to a NUMA node (<c>migrate_pages</c> of a range).</summary>
internal sealed class MigrationMechanism(StressContext context) : StressMechanism
{
    private long _failed;

    public override StressMechanismKind Kind => StressMechanismKind.Migration;

    public override string Name => "page migration";

    public override string OperationName => "2 MiB ranges to a node";

    public override string EffectName => "pages migrated";

    public override string Detail => string.Create(CultureInfo.InvariantCulture, $"{Interlocked.Read(ref _failed):N0} not moved (busy, shared, huge …), {context.Process.MigrationEntryWaits:N0} waits on a migration entry");

    protected override void Execute(in StressOperation operation, CancellationToken stop)
    {
        var start = context.Memory.ChunkHva(operation.Chunk);
        var summary = context.Host.Migration.MigrateRange(context.Process, start, start + ((ulong)operation.Pages * Paging.PageSize), operation.Node);
        AddEffect(summary.Migrated);
        Interlocked.Add(ref _failed, summary.Failed);
    }
}
