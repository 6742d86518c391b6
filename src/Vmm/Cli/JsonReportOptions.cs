using System.CommandLine;
using System.CommandLine.Invocation;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>--json</c> and <c>--report FILE.html</c>, added to a command by one call (<see cref="AddTo"/>) that wraps its
/// action: the command runs as it always does, its report is captured as it writes it, its VMs are sampled by a
/// <see cref="Tracing.CounterHistory"/>, and at its end the report becomes one JSON document on standard output
/// (schema <see cref="ReportSession.Schema"/>, docs/report-schema.md) and/or one self-contained HTML page.
/// </summary>
internal static class JsonReportOptions
{
    /// <summary>
    /// Adds the two options to <paramref name="command"/> (which must already have its action, synchronous or not) and
    /// wraps its action; returns the command. <paramref name="kind"/> is the documents' <c>kind</c> (<c>demo.swap</c>, …).
    /// </summary>
    public static Command AddTo(Command command, CliContext context, string kind)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(kind);
        Func<ParseResult, int> inner = command.Action switch
        {
            SynchronousCommandLineAction action => action.Invoke,
            AsynchronousCommandLineAction action => parseResult => action.InvokeAsync(parseResult, CancellationToken.None).GetAwaiter().GetResult(),
            _ => throw new ArgumentException($"'{command.Name}' has no action to wrap", nameof(command)),
        };
        var json = new Option<bool>("--json")
        {
            Description = "Write the final report to standard output as one JSON document (schema hv-report/1, see docs/report-schema.md) and nothing else: the guest's console and progress lines go to standard error.",
        };
        var report = new Option<string?>("--report")
        {
            Description = "Also write the report as one self-contained HTML page (no network): the final tables, and SVG charts per VM of resident, swapped and KSM-merged pages, present sptes, and EPT violations and zaps per second over the run.",
            HelpName = "FILE.html",
        };
        command.Options.Add(json);
        command.Options.Add(report);
        command.SetAction(parseResult =>
        {
            var asJson = parseResult.GetValue(json);
            var path = parseResult.GetValue(report);
            if (!asJson && path is null)
            {
                return inner(parseResult);
            }

            var line = "hv " + string.Join(' ', parseResult.Tokens.Select(t => t.Value));
            if (!ReportSession.TryCreate(kind, line, asJson, path, out var opened, out var why))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--report {path}: '{Path.GetFullPath(path is null or { Length: 0 } ? "." : path)}' cannot be created: {CliErrorHandler.OneLine(why ?? string.Empty)}");
                return ExitCodes.UsageError;
            }

            using var session = opened!;
            context.Report = session;
            try
            {
                return session.Finish(inner(parseResult), context.StandardOutput, context.Error);
            }
            finally
            {
                context.Report = null;
            }
        });
        return command;
    }
}
