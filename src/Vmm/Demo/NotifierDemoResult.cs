using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Vmm.Demo;

/// <summary>What one run of <see cref="NotifierDemo"/> produced.</summary>
/// <param name="Seed">The seed of the random ranges.</param>
/// <param name="RandomRanges">How many random ranges were issued.</param>
/// <param name="ScriptThreadId">Managed id of the thread that ran the script (shown as "main").</param>
/// <param name="Timeline">Every callback and host step, in order.</param>
/// <param name="UserEventReads">Each read of the user event channel, in order.</param>
/// <param name="ChainStats">The chain's counters at the end.</param>
/// <param name="ChannelStats">The user channel's counters at the end.</param>
internal sealed record NotifierDemoResult(
    int Seed,
    int RandomRanges,
    int ScriptThreadId,
    IReadOnlyList<NotifierTraceEvent> Timeline,
    IReadOnlyList<UserEventRead> UserEventReads,
    MmuNotifierChainStats ChainStats,
    UserEventChannelStats ChannelStats);
