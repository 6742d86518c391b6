using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo</c>: the scripted demonstration of the host memory manager and its notifier calls
/// (<see cref="HostDemoCommand"/>). <c>hv demo host</c> is the same run; <c>hv demo notifier</c>, its
/// former name, is an alias of <c>host</c>; <c>hv demo swap</c> swaps a running guest's memory (<see cref="SwapDemoCommand"/>);
/// <c>hv demo ksm</c> merges several running guests' pages (<see cref="KsmDemoCommand"/>); <c>hv demo migrate</c> migrates a
/// running guest's memory between NUMA nodes (<see cref="MigrateDemoCommand"/>); <c>hv demo thp</c> compares a guest with and
/// without transparent huge pages, then splits and collapses them under it (<see cref="ThpDemoCommand"/>); <c>hv demo dma</c> runs a
/// DMA engine's registration cache on the user event channel under host pressure, then without it (<see cref="DmaDemoCommand"/>);
/// <c>hv demo history</c> replays the notifier races of 2008-2013 in their eras and today (<see cref="HistoryDemoCommand"/>);
/// <c>hv demo stress</c> runs every host mechanism at once under a guest that verifies its memory (<see cref="StressDemoCommand"/>).
/// </summary>
internal static class DemoCommand
{

    /// <summary>Creates <c>demo</c>, which runs the host demo itself, with <c>host</c> as its subcommand.</summary>
    public static Command Create(CliContext context, Option<LogLevel> logLevel)
    {
        var demo = new Command("demo", HostDemoCommand.Description);
        HostDemoCommand.Configure(demo, context, logLevel);
        demo.Subcommands.Add(HostDemoCommand.Create(context, logLevel));
        demo.Subcommands.Add(SwapDemoCommand.Create(context));
        demo.Subcommands.Add(KsmDemoCommand.Create(context));
        demo.Subcommands.Add(MigrateDemoCommand.Create(context));
        demo.Subcommands.Add(ThpDemoCommand.Create(context));
        demo.Subcommands.Add(DmaDemoCommand.Create(context));
        demo.Subcommands.Add(HistoryDemoCommand.Create(context));
        demo.Subcommands.Add(StressDemoCommand.Create(context));
        return demo;
    }
}
