using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>The <c>hv demo</c> command group: scripted runs of one mechanism each, written to be read.</summary>
internal static class DemoCommand
{
    /// <summary>Creates <c>demo</c> with its subcommands.</summary>
    public static Command Create(CliContext context, Option<LogLevel> logLevel)
    {
        var demo = new Command("demo", "Scripted demonstrations of one mechanism at a time, printed to be read.");
        demo.Subcommands.Add(NotifierDemoCommand.Create(context, logLevel));
        return demo;
    }
}
