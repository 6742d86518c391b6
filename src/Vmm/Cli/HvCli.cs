using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The <c>hv</c> command tree and its invocation: parse, report usage errors, run the chosen command, and
/// turn whatever escapes it into one error line (<see cref="CliErrorHandler"/>).
/// </summary>
internal sealed class HvCli
{
    private readonly CliContext _context;

    /// <summary>Builds the command tree writing to <paramref name="context"/>.</summary>
    public HvCli(CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _context = context;
        LogLevelOption = CliOptions.Enum(
            "--log-level",
            "Log messages at this level and above to standard error, one category per mechanism (Hypervisor.Notifier, …).",
            LogLevel.Warning);
        LogLevelOption.Recursive = true;

        // A plain command named "hv" rather than RootCommand, whose name is the host executable's.
        Root = new Command("hv", "A KVM-like hypervisor simulator whose subject is the secondary MMU.");
        var help = new HelpOption();
        Root.Options.Add(help);
        Root.Options.Add(new VersionOption { Action = new VersionAction() });
        Root.Options.Add(LogLevelOption);
        var demo = DemoCommand.Create(context, LogLevelOption);

        // --json and --report on the demo itself and on every demo (kind "demo.NAME"), every bench and run.
        JsonReportOptions.AddTo(demo, context, "demo." + HostDemoCommand.Name);
        foreach (var sub in demo.Subcommands.Where(c => c.Action is not null))
        {
            JsonReportOptions.AddTo(sub, context, "demo." + sub.Name);
        }

        Root.Subcommands.Add(demo);
        var bench = BenchCommand.Create(context);
        foreach (var sub in bench.Subcommands)
        {
            JsonReportOptions.AddTo(sub, context, "bench." + sub.Name);
        }

        Root.Subcommands.Add(bench);
        var run = JsonReportOptions.AddTo(RunCommand.Create(context, LogLevelOption), context, "run");
        Root.Subcommands.Add(run);

        // A command's own help ends with its details, when it has any (command lists show only the description).
        help.Action = new DetailedHelpAction(
            (SynchronousCommandLineAction)help.Action!,
            new Dictionary<Command, string>
            {
                [demo] = HostDemoCommand.Details,
                [run] = RunCommand.Details,
                [demo.Subcommands.Single(c => c.Name == HostDemoCommand.Name)] = HostDemoCommand.Details,
            });
    }

    /// <summary>The root command; tests may add commands to it.</summary>
    public Command Root { get; }

    /// <summary>The global <c>--log-level</c> option (recursive: valid after any subcommand).</summary>
    public Option<LogLevel> LogLevelOption { get; }

    /// <summary>Parses <paramref name="args"/> and runs the chosen command.</summary>
    /// <returns>The exit code (see <see cref="ExitCodes"/>).</returns>
    public int Invoke(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var errors = new CliErrorHandler(_context.Error);
        var parseResult = Root.Parse(args);
        if (parseResult.Action is ParseErrorAction)
        {
            return errors.ReportUsage(parseResult);
        }

        var logLevel = parseResult.GetValue(LogLevelOption);
        try
        {
            return parseResult.Invoke(new InvocationConfiguration
            {
                Output = _context.Output,
                Error = _context.Error,
                EnableDefaultExceptionHandler = false,
            });
        }
        catch (Exception exception)
        {
            // The one catch-all of hv: whatever a command throws becomes one line and an exit code.
            return errors.Report(exception, logLevel);
        }
    }
}
