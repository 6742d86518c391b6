using System.Diagnostics;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Migration;

/// <summary>
/// Page migration between NUMA nodes (Linux's <c>mm/migrate.c</c>): <see cref="MovePages"/> (<c>move_pages</c>),
/// <see cref="MigratePages"/> (<c>migrate_pages</c>) and <see cref="MigrateRange"/> (<c>mbind(MPOL_MF_MOVE)</c>). Each
/// page is isolated from its LRU, locked, unmapped to migration entries in <c>try_to_migrate_one</c>'s order (§3: start
/// (Clear) → PTE cleared and flushed → migration entry → mapcount and reference dropped → end), its references frozen,
/// its data and state (dirty, referenced, active, workingset, swap cache, reverse map, cgroup charge) copied to a frame on
/// the target node, its entries replaced by the new frame with no notifier (<c>remove_migration_ptes</c>), and the old
/// frame freed. A fault on a migration entry waits for the end (<see cref="Mm"/>'s <c>migration_entry_wait</c>), the
/// secondary MMUs' get-user-pages included. Attempts that fail transiently (-EAGAIN: a page locked, a mapping not
/// unmapped, an extra reference) are retried for up to <see cref="MaxPasses"/> passes, as Linux does.
/// </summary>
/// <remarks>
/// Lock order: a migrating frame's page lock is held from before the unmap until every entry is replaced; the unmap walk
/// takes each process's mmap lock for read without waiting (a busy process makes the attempt -EAGAIN), the restore walk
/// waits for it (a fault that waits on a migration entry does so with its mmap lock dropped, so no reader that waits on
/// the page lock can hold a writer up). Nothing here runs under a page-table lock except the PTE steps themselves.
/// </remarks>
public sealed partial class Migrator
{
    /// <summary>Most passes over the pages that failed with -EAGAIN (Linux's <c>NR_MAX_MIGRATE_PAGES_RETRY</c>).</summary>
    public const int MaxPasses = 10;

    private readonly Host _host;
    private readonly HostMemory _memory;
    private long _success;
    private long _fail;
    private long _retries;
    private long _entriesInstalled;
    private long _entriesRemoved;
    private long _failReferenced;
    private long _failBusy;
    private long _failTargetNodeFull;
    private long _thpMigrationSuccess;
    private long _thpMigrationSplit;

    internal Migrator(Host host)
    {
        _host = host;
        _memory = host.Memory;
    }

    /// <summary>A snapshot of the counters.</summary>
    public MigrationStats Stats => new()
    {
        PgmigrateSuccess = Volatile.Read(ref _success),
        PgmigrateFail = Volatile.Read(ref _fail),
        Retries = Volatile.Read(ref _retries),
        EntriesInstalled = Volatile.Read(ref _entriesInstalled),
        EntriesRemoved = Volatile.Read(ref _entriesRemoved),
        FailReferenced = Volatile.Read(ref _failReferenced),
        FailBusy = Volatile.Read(ref _failBusy),
        FailTargetNodeFull = Volatile.Read(ref _failTargetNodeFull),
        ThpMigrationSuccess = Volatile.Read(ref _thpMigrationSuccess),
        ThpMigrationSplit = Volatile.Read(ref _thpMigrationSplit),
    };

    /// <summary>
    /// <c>move_pages(2)</c>: moves each page <paramref name="pages"/>[i] of <paramref name="mm"/> to node
    /// <paramref name="nodes"/>[i] and reports, per page, the node it is on afterwards or why it stayed
    /// (<see cref="PageMoveStatus"/>). Pages mapped by other processes too are moved only with
    /// <paramref name="moveShared"/> (MPOL_MF_MOVE_ALL).
    /// </summary>
    /// <exception cref="ArgumentException">The spans differ in length.</exception>
    /// <exception cref="NumaNodeOutOfRangeException">A node does not exist (nothing is moved).</exception>
    public PageMoveStatus[] MovePages(Mm mm, ReadOnlySpan<Hva> pages, ReadOnlySpan<int> nodes, bool moveShared = false)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (pages.Length != nodes.Length)
        {
            throw new ArgumentException($"move_pages got {pages.Length} pages and {nodes.Length} nodes: there must be one node per page", nameof(nodes));
        }

        foreach (var node in nodes)
        {
            CheckNode(node, nameof(nodes), "move_pages");
        }

        var status = new PageMoveStatus[pages.Length];
        var pending = new List<Pending>();
        for (var i = 0; i < pages.Length; i++)
        {
            var page = pages[i].PageAligned;
            var pte = mm.ReadForMigration(page, out var vma);
            if (vma is null)
            {
                status[i] = new PageMoveStatus(-1, MigrationFailure.NotMapped);
                continue;
            }

            if (!MapsResidentFrame(pte))
            {
                status[i] = new PageMoveStatus(-1, MigrationFailure.NotPresent);
                continue;
            }

            var pfn = pte.Pfn;
            var target = nodes[i];
            if (mm.PageTable.IsHugeMapped(page))
            {
                // move_pages on any page of a huge page moves the whole huge page (or splits it and goes on at 4 KiB).
                var hugeAddress = new Hva(page.Value & ~(PageTables.HostPageTable.HugePageSize - 1));
                var huge = MigrateHugeLeaves(mm, hugeAddress, hugeAddress + PageTables.HostPageTable.HugePageSize, moveShared, (_, _, _) => target);
                var after = mm.ReadForMigration(page, out _);
                if (mm.PageTable.IsHugeMapped(page) || huge.HugePages > 0)
                {
                    var failure = huge.Busy > 0 ? MigrationFailure.Busy : huge.Referenced > 0 ? MigrationFailure.Referenced : huge.Shared > 0 ? MigrationFailure.Shared : MigrationFailure.None;
                    status[i] = new PageMoveStatus(_memory.NodeOf(after.Pfn), failure);
                    continue;
                }

                pfn = after.Pfn; // split: the page goes the 4 KiB way
            }

            var isolated = mm.IsolateForMigration(page, page + Paging.PageSize, (_, _, candidate) => candidate == pfn ? target : -1, out _);
            if (isolated.Count == 0)
            {
                // Not resident any more, or someone else has it isolated.
                var now = mm.ReadForMigration(page, out _);
                status[i] = MapsResidentFrame(now)
                    ? new PageMoveStatus(_memory.NodeOf(now.Pfn), MigrationFailure.Busy)
                    : new PageMoveStatus(-1, MigrationFailure.NotPresent);
                Count(status[i].Failure);
                continue;
            }

            var early = Precheck(pfn, target, moveShared);
            if (early is { } done)
            {
                _host.Reclaim.PutBackIsolated(pfn);
                status[i] = done;
                Count(done.Failure);
                continue;
            }

            pending.Add(new Pending(i, pfn, target));
        }

        Run(mm, pending, (index, node, failure) => status[index] = new PageMoveStatus(node, failure));
        return status;
    }

    /// <summary>
    /// <c>migrate_pages(2)</c> for one node pair: moves every resident page of <paramref name="mm"/> that is on
    /// <paramref name="fromNode"/> to <paramref name="toNode"/>.
    /// </summary>
    /// <exception cref="NumaNodeOutOfRangeException">A node does not exist.</exception>
    public MigrationSummary MigratePages(Mm mm, int fromNode, int toNode, bool moveShared = false)
    {
        ArgumentNullException.ThrowIfNull(mm);
        CheckNode(fromNode, nameof(fromNode), "migrate_pages");
        CheckNode(toNode, nameof(toNode), "migrate_pages");
        return fromNode == toNode
            ? default
            : Migrate(mm, Hva.Zero, Mm.UserSpaceEnd, moveShared, (_, _, pfn) => _memory.NodeOf(pfn) == fromNode ? toNode : -1);
    }

    /// <summary>
    /// Moves every resident page of <paramref name="mm"/> in <c>[start, end)</c> that is not on <paramref name="toNode"/>
    /// there (the migration step of <c>mbind(MPOL_MF_MOVE)</c>, and what <c>hv demo migrate</c> drives).
    /// </summary>
    /// <exception cref="NumaNodeOutOfRangeException"><paramref name="toNode"/> does not exist.</exception>
    public MigrationSummary MigrateRange(Mm mm, Hva start, Hva end, int toNode, bool moveShared = false)
    {
        ArgumentNullException.ThrowIfNull(mm);
        CheckNode(toNode, nameof(toNode), "migrate range");
        return Migrate(mm, start, end, moveShared, (_, _, pfn) => _memory.NodeOf(pfn) != toNode ? toNode : -1);
    }

    /// <summary>
    /// The migration step of <c>mbind(MPOL_MF_MOVE)</c>: every resident page of <paramref name="mm"/> in
    /// <c>[start, end)</c> that its VMA's policy does not allow where it is moves to the node the policy picks for it.
    /// </summary>
    internal MigrationSummary MigrateMisplaced(Mm mm, Hva start, Hva end, bool moveShared)
    {
        var local = HostThread.NodeFor(mm); // "local" is the calling thread's node, as for a fault
        return Migrate(mm, start, end, moveShared, (vma, address, pfn) =>
        {
            var index = vma.PageIndexOf(address);
            return vma.Policy.Allows(_memory.NodeOf(pfn), local, index)
                ? -1
                : Math.Min(vma.Policy.NodeFor(local, index), _memory.NodeCount - 1);
        });
    }

    /// <summary>
    /// Migrates one isolated frame <paramref name="pfn"/> of <paramref name="mm"/> to <paramref name="node"/>, retrying
    /// -EAGAIN as <see cref="MovePages"/> does; the isolation is consumed. For NUMA balancing.
    /// </summary>
    internal MigrationFailure MigrateIsolated(Mm mm, Pfn pfn, int node)
    {
        var result = MigrationFailure.None;
        var early = Precheck(pfn, node, moveShared: false);
        if (early is { } done)
        {
            _host.Reclaim.PutBackIsolated(pfn);
            Count(done.Failure);
            return done.Failure;
        }

        Run(mm, [new Pending(0, pfn, node)], (_, _, failure) => result = failure);
        return result; // NUMA balancing counts numa_pages_migrated itself
    }

    private MigrationSummary Migrate(Mm mm, Hva start, Hva end, bool moveShared, Func<Vmas.Vma, Hva, Pfn, int> targetOf)
    {
        var huge = MigrateHugeLeaves(mm, start, end, moveShared, targetOf);
        var isolated = mm.IsolateForMigration(start, end, targetOf, out var busy);
        var pending = new List<Pending>(isolated.Count);
        long migrated = 0, referenced = 0, full = 0, shared = 0;
        Interlocked.Add(ref _fail, busy);
        Interlocked.Add(ref _failBusy, busy);
        void Tally(MigrationFailure failure)
        {
            switch (failure)
            {
                case MigrationFailure.None: migrated++; break;
                case MigrationFailure.Busy: busy++; break;
                case MigrationFailure.Referenced: referenced++; break;
                case MigrationFailure.TargetNodeFull: full++; break;
                case MigrationFailure.Shared: shared++; break;
            }
        }

        foreach (var (_, pfn, toNode) in isolated)
        {
            var early = Precheck(pfn, toNode, moveShared);
            if (early is { } done)
            {
                _host.Reclaim.PutBackIsolated(pfn);
                Count(done.Failure);
                Tally(done.Failure);
                continue;
            }

            pending.Add(new Pending(pending.Count, pfn, toNode));
        }

        var passes = Run(mm, pending, (_, _, failure) => Tally(failure));
        return new MigrationSummary
        {
            Migrated = migrated + huge.Migrated,
            HugePages = huge.HugePages,
            Busy = busy + huge.Busy,
            Referenced = referenced + huge.Referenced,
            TargetNodeFull = full,
            Shared = shared + huge.Shared,
            RetryPasses = Math.Max(passes, huge.RetryPasses + 1) - 1,
        };
    }

    /// <summary>
    /// The huge leaves of <c>[start, end)</c> that <paramref name="targetOf"/> sends elsewhere: each exclusive huge page
    /// migrates whole (<see cref="Mm.MigrateHugeLeaf"/>, retried up to <see cref="MaxPasses"/> passes while busy); a shared
    /// one (with <paramref name="moveShared"/>) or one the target node has no whole block for is split, and its pages
    /// then go the 4 KiB way with the rest of the range (Linux's <c>thp_migration_split</c>).
    /// </summary>
    private MigrationSummary MigrateHugeLeaves(Mm mm, Hva start, Hva end, bool moveShared, Func<Vmas.Vma, Hva, Pfn, int> targetOf)
    {
        const int frames = PageTables.HostPageTable.HugePageFrames;
        long migrated = 0, huge = 0, busy = 0, referenced = 0, shared = 0;
        var passes = 0;
        foreach (var (address, leaf, vma) in mm.HugeLeavesIn(start, end))
        {
            if (_host.IsHugeZeroPage(leaf.Pfn))
            {
                continue;
            }

            var node = targetOf(vma, address, leaf.Pfn);
            if (node < 0)
            {
                continue;
            }

            if (_memory.Frame(leaf.Pfn).MapCount > 1 && !moveShared)
            {
                shared += frames;
                continue;
            }

            for (var pass = 1; pass <= MaxPasses; pass++)
            {
                passes = Math.Max(passes, pass);
                var trace = _host.Trace;
                var started = trace is null ? 0 : Stopwatch.GetTimestamp();
                var failure = mm.MigrateHugeLeaf(address, node, out var moved);
                trace?.PageMigrated(mm, leaf.Pfn, trace is null ? 0 : _memory.NodeOf(leaf.Pfn), node, frames, failure, started);
                if (failure == MigrationFailure.None)
                {
                    if (moved)
                    {
                        migrated += frames;
                        huge++;
                        Interlocked.Add(ref _success, frames);
                        Interlocked.Increment(ref _thpMigrationSuccess);
                    }

                    break;
                }

                if (failure is MigrationFailure.Shared or MigrationFailure.TargetNodeFull)
                {
                    mm.SplitHugeForMigration(address);
                    Interlocked.Increment(ref _thpMigrationSplit);
                    break;
                }

                if (failure is MigrationFailure.NotPresent or MigrationFailure.NotMapped)
                {
                    break; // gone or changed meanwhile
                }

                if (pass == MaxPasses)
                {
                    Interlocked.Add(ref _fail, frames);
                    Interlocked.Add(ref failure == MigrationFailure.Busy ? ref _failBusy : ref _failReferenced, frames);
                    if (failure == MigrationFailure.Busy)
                    {
                        busy += frames;
                    }
                    else
                    {
                        referenced += frames;
                    }

                    break;
                }

                Interlocked.Increment(ref _retries);
                Thread.Yield();
            }
        }

        return new MigrationSummary { Migrated = migrated, HugePages = huge, Busy = busy, Referenced = referenced, Shared = shared, RetryPasses = Math.Max(passes - 1, 0) };
    }

    /// <summary>The checks that need no lock: already there (success with nothing to do), a shared page.</summary>
    private PageMoveStatus? Precheck(Pfn pfn, int node, bool moveShared)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (frame.Node == node)
        {
            return new PageMoveStatus(node, MigrationFailure.None);
        }

        if (!moveShared && frame.MapCount > 1)
        {
            return new PageMoveStatus(frame.Node, MigrationFailure.Shared);
        }

        return null;
    }

    /// <summary>
    /// Linux's <c>migrate_pages</c> loop over isolated frames: up to <see cref="MaxPasses"/> passes, each trying every
    /// frame still pending; a permanent failure or the last pass's -EAGAIN puts the frame back on its LRU. Reports every
    /// frame once through <paramref name="report"/> (its index, the node it is on, the failure), and each attempt to the
    /// host's trace as done for <paramref name="mm"/>. Returns the passes run.
    /// </summary>
    private int Run(Mm mm, List<Pending> pending, Action<int, int, MigrationFailure> report)
    {
        var trace = _host.Trace;
        var passes = 0;
        while (pending.Count > 0 && passes < MaxPasses)
        {
            passes++;
            var again = new List<Pending>();
            foreach (var item in pending)
            {
                var started = trace is null ? 0 : Stopwatch.GetTimestamp();
                var fromNode = trace is null ? 0 : _memory.NodeOf(item.Pfn);
                var failure = MigrateOne(item.Pfn, item.Node);
                trace?.PageMigrated(mm, item.Pfn, fromNode, item.Node, 1, failure, started);
                if (failure is MigrationFailure.Busy or MigrationFailure.Referenced && passes < MaxPasses)
                {
                    Interlocked.Increment(ref _retries);
                    again.Add(item with { LastFailure = failure });
                    continue;
                }

                if (failure != MigrationFailure.None)
                {
                    var node = _memory.NodeOf(item.Pfn);
                    _host.Reclaim.PutBackIsolated(item.Pfn);
                    Count(failure);
                    report(item.Index, node, failure);
                    continue;
                }

                Interlocked.Increment(ref _success);
                report(item.Index, item.Node, MigrationFailure.None);
            }

            pending = again;
            if (pending.Count > 0)
            {
                Thread.Yield(); // let the holder of the reference or lock finish before the next pass
            }
        }

        return Math.Max(passes, 1);
    }

    private void Count(MigrationFailure failure)
    {
        if (failure is MigrationFailure.None or MigrationFailure.NotMapped or MigrationFailure.NotPresent)
        {
            return;
        }

        Interlocked.Increment(ref _fail);
        switch (failure)
        {
            case MigrationFailure.Busy:
                Interlocked.Increment(ref _failBusy);
                break;
            case MigrationFailure.Referenced:
                Interlocked.Increment(ref _failReferenced);
                break;
            case MigrationFailure.TargetNodeFull:
                Interlocked.Increment(ref _failTargetNodeFull);
                break;
        }
    }

    private void CheckNode(int node, string paramName, string operation)
    {
        if (node < 0 || node >= _memory.NodeCount)
        {
            throw new NumaNodeOutOfRangeException(paramName, node, _memory.NodeCount, operation);
        }
    }

    private bool MapsResidentFrame(HostPte pte) =>
        !pte.IsNone && (pte.IsPresent || PageTables.HostPteEncoding.Classify(pte) == PageTables.HostPteKind.ProtNone) && pte.Pfn != _host.ZeroPfn;

    private readonly record struct Pending(int Index, Pfn Pfn, int Node, MigrationFailure LastFailure = MigrationFailure.None);
}
