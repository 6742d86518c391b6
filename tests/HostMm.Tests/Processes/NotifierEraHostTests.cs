using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// The host's side of the notifier eras: under <see cref="NotifierEra.NoRangeStartEnd"/> it issues no start and
/// announces each change after it (a zap's after its frees); by default it follows today's order. And exit's release
/// runs before the mmap lock is taken, so reverse-map walkers can still reach the process while subscribers release.
/// </summary>
public class NotifierEraHostTests
{
    [Test]
    public void ADefaultHostFollowsTodaysContract()
    {
        using var host = Create();
        Assert.That(host.Options.NotifierEra, Is.EqualTo(NotifierEra.Current));
        Assert.That(host.CreateMm().Notifiers.Era, Is.EqualTo(NotifierEra.Current));
    }

    [Test]
    public void EveryProcessChainFollowsTheHostsEra()
    {
        using var host = Create(era: NotifierEra.ReleaseAfterUnlink);
        var mm = host.CreateMm();
        var child = mm.Fork();

        Assert.That(mm.Notifiers.Era, Is.EqualTo(NotifierEra.ReleaseAfterUnlink));
        Assert.That(child.Notifiers.Era, Is.EqualTo(NotifierEra.ReleaseAfterUnlink));
        child.Exit();
        mm.Exit();
    }

    [Test]
    public void Without2008RangeStartMunmapAnnouncesTheChangeOnlyAfterTheFrees()
    {
        using var host = Create(era: NotifierEra.NoRangeStartEnd);
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Munmap(start, 4 * Page);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("pte flush free start:Unmap end"));
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(4));
        AssertConsistent(host);
        mm.Exit();
    }

    [Test]
    public void Without2008RangeStartMprotectAnnouncesTheChangeRightAfterThePtes()
    {
        using var host = Create(era: NotifierEra.NoRangeStartEnd);
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Mprotect(start, 2 * Page, Protection.Read);

        var timeline = Timeline(recorder, mm);
        Assert.That(timeline, Does.StartWith("pte start:ProtectionVma end"), timeline);
        Assert.That(mm.Notifiers.Stats.Starts, Is.EqualTo(mm.Notifiers.Stats.Ends));
        AssertConsistent(host);
        mm.Exit();
    }

    [Test]
    public void TodayTheSameMunmapStartsBeforeThePtesChange()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Munmap(start, 4 * Page);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Unmap pte end flush free"));
        mm.Exit();
    }

    [Test]
    public void ExitReleasesBeforeTakingTheMmapLockSoAReverseMapWalkCanEnterMeanwhile()
    {
        using var host = Create();
        var mm = host.CreateMm();
        mm.Mmap(2 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var probe = new LockProbeNotifier(mm);
        mm.Notifiers.Register(probe);

        mm.Exit();

        Assert.That(probe.RmapWalkCouldEnter, Is.True, "a reverse-map walker from another thread could take the mmap lock while release ran");
        Assert.That(mm.HasExited, Is.True);
        Assert.That(() => mm.Exit(), Throws.TypeOf<MmExitedException>());
    }
}
