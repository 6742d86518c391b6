using System.CommandLine;
using System.CommandLine.Invocation;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The help action of <c>hv</c>: the standard help, then, for a command that has them, its details (a scenario,
/// what is printed, exit codes) — text too long for the one-line description that command lists show.
/// </summary>
internal sealed class DetailedHelpAction : SynchronousCommandLineAction
{
    private readonly SynchronousCommandLineAction _standard;
    private readonly IReadOnlyDictionary<Command, string> _details;

    /// <summary>Wraps <paramref name="standard"/> (System.CommandLine's help action) with <paramref name="details"/> per command.</summary>
    public DetailedHelpAction(SynchronousCommandLineAction standard, IReadOnlyDictionary<Command, string> details)
    {
        ArgumentNullException.ThrowIfNull(standard);
        ArgumentNullException.ThrowIfNull(details);
        _standard = standard;
        _details = details;
    }

    /// <inheritdoc />
    public override int Invoke(ParseResult parseResult)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        var exitCode = _standard.Invoke(parseResult);
        if (_details.TryGetValue(parseResult.CommandResult.Command, out var details))
        {
            var output = parseResult.InvocationConfiguration.Output;
            output.WriteLine(details);
            output.WriteLine();
        }

        return exitCode;
    }
}
