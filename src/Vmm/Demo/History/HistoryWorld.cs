using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// What a replayed race runs on: a host in one era (two NUMA nodes, the smallest RAM it takes), one process whose
/// anonymous mapping is a guest's RAM, and the real secondary MMU (<see cref="TdpMmu"/>) with one memslot over it,
/// listening on the process's chain through a <see cref="SecondaryMmuInterposer"/>. The host's trace, the interposer and
/// the scheduler write one timeline.
/// </summary>
internal sealed class HistoryWorld : IDisposable
{
    /// <summary>Pages of guest RAM.</summary>
    public const int GuestPages = 16;

    /// <summary>Host RAM.</summary>
    public const ulong HostBytes = HostMemoryOptions.MinTotalBytes;

    private HistoryWorld(NotifierEra era)
    {
        Era = era;
        Recorder = new NotifierEventRecorder();
        Scheduler = new StepScheduler(Recorder);
        Host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = HostBytes, NodeCount = 2 },
            NotifierEra = era,
        });
        Trace = new GatingHostTrace(Recorder, Scheduler);
        Host.Trace = Trace;
        Process = Host.CreateMm();
        GuestBase = Process.Mmap(GuestPages * Paging.PageSize, Protection.Read | Protection.Write);
        Mmu = new TdpMmu(new TlbShootdown());
        View = new SecondaryMmuView(Process);
        Backing = new GatedBacking(new HostProcessBacking(Process), View, Scheduler);
        Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), GuestPages * Paging.PageSize, GuestBase, Backing);
        Interposer = new SecondaryMmuInterposer(Mmu, View, Recorder, Scheduler);
        Subscription = Process.Notifiers.Register(Interposer);
    }

    /// <summary>The era the chain and host follow.</summary>
    public NotifierEra Era { get; }

    /// <summary>The timeline.</summary>
    public NotifierEventRecorder Recorder { get; }

    /// <summary>Runs the actors.</summary>
    public StepScheduler Scheduler { get; }

    /// <summary>The host.</summary>
    public Host Host { get; }

    /// <summary>The host's trace, which can hold the host at the race's page and frame.</summary>
    public GatingHostTrace Trace { get; }

    /// <summary>The process whose memory is the guest's RAM.</summary>
    public Mm Process { get; }

    /// <summary>Where the guest's RAM starts in the process.</summary>
    public Hva GuestBase { get; }

    /// <summary>The secondary MMU.</summary>
    public TdpMmu Mmu { get; }

    /// <summary>The identity the MMU knows the process by.</summary>
    public SecondaryMmuView View { get; }

    /// <summary>The MMU's backing.</summary>
    public GatedBacking Backing { get; }

    /// <summary>The MMU's stand-in on the process's chain.</summary>
    public SecondaryMmuInterposer Interposer { get; }

    /// <summary>The stand-in's registration.</summary>
    public MmuNotifierSubscription Subscription { get; }

    /// <summary>Builds a world in <paramref name="era"/>.</summary>
    public static HistoryWorld Create(NotifierEra era) => new(era);

    /// <summary>The host address of guest page <paramref name="page"/>.</summary>
    public Hva Page(int page) => GuestBase + ((ulong)page * Paging.PageSize);

    /// <summary>The guest-physical address of guest page <paramref name="page"/>.</summary>
    public static Gpa GuestPage(int page) => new((ulong)page * Paging.PageSize);

    /// <summary>The guest writes page <paramref name="page"/> from the script's thread: an EPT violation that installs a writable spte.</summary>
    public void GuestWrite(int page)
    {
        var result = Mmu.HandleEptViolation(GuestPage(page), EptAccess.Write);
        if (result.Outcome != EptFaultOutcome.Installed)
        {
            throw new InvalidOperationException($"history scenario: the guest's write fault on page {page} ended {result.Outcome}, not Installed");
        }
    }

    /// <summary>The secondary MMU's auditor.</summary>
    public IReadOnlyList<string> Audit() => MmuAuditor.Check(Mmu);

    /// <summary>The run's result, once every actor finished.</summary>
    public HistoryRunResult Result(HistoricalRace race, string checkpoint, IReadOnlyList<string> atCheckpoint, IReadOnlyList<string> final) =>
        new(race, Era, Recorder.Events, Scheduler.ActorNames, Host.ZeroPfn, GuestBase, checkpoint, atCheckpoint, final, Interposer.Releases, Mmu.Stats);

    /// <summary>Lets every held actor go, ends the process if the race did not, and frees the MMU and the host.</summary>
    public void Dispose()
    {
        Scheduler.Drain();
        if (!Process.HasExited && !Process.Notifiers.IsExiting)
        {
            Process.Exit();
        }

        Mmu.Dispose();
        Host.Dispose();
    }
}
