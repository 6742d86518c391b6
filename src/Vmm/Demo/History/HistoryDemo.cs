using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// <c>hv demo history</c>: replays the notifier races behind the seeds' fixes with a deterministic interleaving, each
/// twice — with the chain and host in the race's era (<see cref="NotifierEra"/>), where the secondary MMU's auditor
/// catches the stale mapping, and with today's contract, where the same steps leave nothing stale.
/// </summary>
/// <remarks>
/// Every run builds its own <see cref="HistoryWorld"/>, so frame numbers repeat from run to run. The steps are the same
/// in both eras; only the chain and host differ. A step lets one actor go until its next held point
/// (<see cref="StepScheduler"/>), so the timeline is the same on every run.
/// </remarks>
internal static class HistoryDemo
{
    /// <summary>The guest page every race is about.</summary>
    public const int RacedPage = 5;

    /// <summary>The NUMA node the migration of the 2012 race moves the page to.</summary>
    public const int MigrationTarget = 1;

    /// <summary>Replays <paramref name="races"/> (all of them when empty), each in its era and today.</summary>
    public static HistoryDemoResult Run(IReadOnlyList<HistoricalRace> races)
    {
        ArgumentNullException.ThrowIfNull(races);
        var chosen = races.Count == 0 ? HistoricalRaceInfo.All : [.. HistoricalRaceInfo.All.Where(info => races.Contains(info.Race))];
        return new HistoryDemoResult([.. chosen.Select(info => new HistoryRaceResult(info, Replay(info.Race, info.Era), Replay(info.Race, NotifierEra.Current)))]);
    }

    /// <summary>Replays <paramref name="race"/> once with the chain and host in <paramref name="era"/>.</summary>
    public static HistoryRunResult Replay(HistoricalRace race, NotifierEra era)
    {
        using var world = HistoryWorld.Create(era);
        return race switch
        {
            HistoricalRace.ReleaseUnlink => ReleaseUnlink(world),
            HistoricalRace.UnregisterRelease => UnregisterRelease(world),
            HistoricalRace.NoRangeStartEnd => NoRangeStartEnd(world),
            _ => throw new ArgumentOutOfRangeException(nameof(race), race, $"no historical race {(int)race}"),
        };
    }

    /// <summary>
    /// 2012. The process exits; its release reaches the secondary MMU (held there, nothing zapped yet). Meanwhile a
    /// migration from another thread moves a guest page to the other node through the reverse map: its start goes to
    /// whoever is still listed, its old frame is freed. In the era the MMU was unlinked before its release, so the start
    /// missed it and its spte still maps the freed frame.
    /// </summary>
    private static HistoryRunResult ReleaseUnlink(HistoryWorld world)
    {
        var scheduler = world.Scheduler;
        Setup(world, skip: -1);
        var exit = scheduler.Start("exit", world.Process.Exit);
        var migration = scheduler.Start("migration", () => Migrate(world));

        scheduler.Mark("exit: exit_mmap begins with mmu_notifier_release");
        scheduler.RunUntil(exit, HistoryPoint.ReleaseReachedMmu);
        scheduler.Mark($"migration (another thread, through the reverse map): move page {RacedPage} to node {MigrationTarget}");
        scheduler.RunToEnd(migration);
        const string checkpoint = "after the migration freed the old frame, before the MMU's release zapped anything";
        var atCheckpoint = Checkpoint(world, checkpoint);
        scheduler.Mark("exit: the release reaches the MMU's zap; exit_mmap goes on");
        scheduler.RunToEnd(exit);
        return world.Result(HistoricalRace.ReleaseUnlink, checkpoint, atCheckpoint, Final(world));
    }

    /// <summary>
    /// 2013. The VMM unregisters the secondary MMU while the process exits. Unregister's release is held at the MMU's
    /// entry; exit runs as far as it can. In the era the unlink claimed the release and unregister called it outside the
    /// read side, so exit found nothing to release, waited for nothing, and freed every page under the MMU's sptes.
    /// Today unregister releases inside the read side, so exit's synchronize waits for it.
    /// </summary>
    private static HistoryRunResult UnregisterRelease(HistoryWorld world)
    {
        var scheduler = world.Scheduler;
        var chain = world.Process.Notifiers;
        Setup(world, skip: -1);
        var unregister = scheduler.Start("unregister", () => chain.Unregister(world.Subscription));
        var exit = scheduler.Start("exit", world.Process.Exit);

        scheduler.Mark("unregister: the VMM closes the VM (mmu_notifier_unregister)");
        scheduler.RunUntil(unregister, HistoryPoint.ReleaseReachedMmu);
        scheduler.Mark("exit: the process exits meanwhile (mmu_notifier_release, then exit_mmap's unmap)");
        var exitFinished = scheduler.RunUntilFinishedOrBlocked(exit, () => chain.IsWaitingForGracePeriod, "wait for the release in flight");
        scheduler.Mark(exitFinished
            ? "exit returned: the MMU was no longer listed, so exit released nothing, waited for nothing and freed every page"
            : "exit waits: its release walk skipped the MMU (unregister claimed the release), and its synchronize waits for that release");
        var checkpoint = exitFinished
            ? "after exit returned, before unregister's release zapped anything"
            : "while exit waits for unregister's release, before it zapped anything";
        var atCheckpoint = Checkpoint(world, checkpoint);
        scheduler.Mark("unregister: the release reaches the MMU's zap");
        scheduler.RunToEnd(unregister);
        if (!exitFinished)
        {
            scheduler.AwaitEnd(exit);
        }

        return world.Result(HistoricalRace.UnregisterRelease, checkpoint, atCheckpoint, Final(world));
    }

    /// <summary>
    /// 2008. A vCPU's fault resolves a guest page's frame; the VMM gives the page back (MADV_DONTNEED, as a balloon
    /// does) and the host clears its PTE; the fault then takes the MMU lock. Today the start already counted an
    /// invalidation in progress, so the fault waits and maps the page's new state. In the era nothing is in progress
    /// and the sequence has not moved: the fault installs the old frame, which the host frees before its late invalidate.
    /// </summary>
    private static HistoryRunResult NoRangeStartEnd(HistoryWorld world)
    {
        var scheduler = world.Scheduler;
        var page = world.Page(RacedPage);
        Setup(world, skip: RacedPage);
        world.Scheduler.Mark($"setup: the VMM writes page {RacedPage} itself (a host fault; no spte yet)");
        world.Process.Write(page, "written by the VMM"u8);
        EptFaultResult fault = default;
        var vcpu = scheduler.Start("vCPU 0", () =>
        {
            fault = world.Mmu.HandleEptViolation(HistoryWorld.GuestPage(RacedPage), EptAccess.Write);
            scheduler.Mark($"vCPU 0: the fault returns {fault.Outcome}: spte → {fault.Spte.Pfn} after {fault.Retries} retr{(fault.Retries == 1 ? "y" : "ies")}");
        });
        var vmm = scheduler.Start("VMM", () => world.Process.Madvise(page, Paging.PageSize, Advice.DontNeed));

        scheduler.Mark($"vCPU 0: EPT violation on page {RacedPage}: snapshot the invalidation sequence, resolve the frame");
        scheduler.RunUntil(vcpu, HistoryPoint.VcpuResolved);
        world.Trace.WatchedPage = page;
        world.Trace.WatchedFrame = world.Backing.LastResolved;
        scheduler.Mark($"VMM: madvise(page {RacedPage}, MADV_DONTNEED), as a balloon gives a page back");
        scheduler.RunUntil(vmm, HistoryPoint.HostPteCleared);
        scheduler.Mark("vCPU 0: takes the MMU lock, checks for invalidations, installs the spte");
        scheduler.Arm(HistoryPoint.VcpuResolving);
        var vcpuFinished = scheduler.RunUntilFinishedOrBlocked(vcpu, () => world.Mmu.Stats.InvalidationWaits > 0, "wait for the invalidation in progress");
        if (!vcpuFinished)
        {
            scheduler.Mark($"vCPU 0: an invalidation is in progress over page {RacedPage}: the fault drops the frame and waits for its end");
        }

        scheduler.Mark("VMM: the madvise goes on");
        scheduler.RunUntil(vmm, HistoryPoint.HostFrameFreed);
        const string checkpoint = "right after the host freed the frame the fault resolved";
        var atCheckpoint = Checkpoint(world, checkpoint);
        scheduler.Mark("VMM: the madvise returns");
        scheduler.RunToEnd(vmm);
        if (!vcpuFinished)
        {
            scheduler.Mark("vCPU 0: the fault, woken by the end, resolves again");
            scheduler.RunToEnd(vcpu);
        }

        return world.Result(HistoricalRace.NoRangeStartEnd, checkpoint, atCheckpoint, Final(world));
    }

    /// <summary>The guest writes every page but <paramref name="skip"/>, so the MMU has sptes to lose.</summary>
    private static void Setup(HistoryWorld world, int skip)
    {
        var pages = skip < 0 ? $"pages 0-{HistoryWorld.GuestPages - 1}" : $"every page but {skip}";
        world.Scheduler.Mark($"setup: the guest writes {pages} (EPT violations: demand-zero host faults, writable sptes)");
        for (var page = 0; page < HistoryWorld.GuestPages; page++)
        {
            if (page != skip)
            {
                world.GuestWrite(page);
            }
        }
    }

    private static void Migrate(HistoryWorld world)
    {
        var status = world.Host.Migration.MovePages(world.Process, [world.Page(RacedPage)], [MigrationTarget]);
        if (status[0].Node != MigrationTarget)
        {
            throw new InvalidOperationException($"history scenario: page {RacedPage} did not move to node {MigrationTarget}: {status[0]}");
        }
    }

    private static IReadOnlyList<string> Checkpoint(HistoryWorld world, string when)
    {
        world.Scheduler.Mark($"audit {when}");
        var violations = world.Audit();
        world.Scheduler.Mark(violations.Count == 0
            ? "MmuAuditor.Check: every spte maps the frame its host PTE maps"
            : $"MmuAuditor.Check: {violations.Count} violation{(violations.Count == 1 ? string.Empty : "s")}: a stale secondary mapping");
        return violations;
    }

    private static IReadOnlyList<string> Final(HistoryWorld world)
    {
        var violations = world.Audit();
        world.Scheduler.Mark(violations.Count == 0
            ? "end: MmuAuditor.Check finds nothing stale"
            : $"end: MmuAuditor.Check: {violations.Count} violation{(violations.Count == 1 ? string.Empty : "s")}");
        return violations;
    }
}
