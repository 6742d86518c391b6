using System.CommandLine;
using System.CommandLine.Parsing;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The one place where <c>hv</c> turns failures into output: a single line on standard error and an exit code, never a
/// stack trace unless <c>--log-level</c> is Debug or Trace.
/// </summary>
/// <remarks>
/// The rule: an exception that carries <see cref="IInputError"/> (bad input, whose message names the value and the
/// rule) and an environment failure (I/O, permissions, KVM unavailable) print as <c>hv: error: message</c> with exit
/// <see cref="ExitCodes.UsageError"/> for a bad option (<see cref="VmOptionsException"/>) and
/// <see cref="ExitCodes.InputError"/> otherwise. Anything else — an <see cref="InvalidOperationException"/> from a broken
/// invariant included — is a bug in <c>hv</c>: <c>hv: internal error: Type: message</c>, exit
/// <see cref="ExitCodes.InternalError"/>.
/// </remarks>
internal sealed class CliErrorHandler
{
    /// <summary>What every error line for bad input or environment starts with.</summary>
    public const string Prefix = "hv: error: ";

    /// <summary>What the line of an internal error (a bug) starts with.</summary>
    public const string InternalPrefix = "hv: internal error: ";

    /// <summary>The hint appended to internal errors when the stack is not shown.</summary>
    public const string DetailsHint = "(run with --log-level Debug for the stack)";

    // System.CommandLine's text for a command group invoked without a subcommand (invariant culture).
    private const string RequiredCommandMessage = "Required command was not provided.";

    private readonly TextWriter _error;

    /// <summary>Creates a handler writing to <paramref name="error"/>.</summary>
    public CliErrorHandler(TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(error);
        _error = error;
    }

    /// <summary>True for the failures that are bad input or environment rather than a bug in <c>hv</c>.</summary>
    public static bool IsInputOrEnvironment(Exception exception) =>
        exception is IInputError or IOException or UnauthorizedAccessException or KvmUnavailableException;

    /// <summary>The exit code for an exception that escaped a command (after unwrapping single-inner aggregates).</summary>
    public static int ExitCodeOf(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var failure = Unwrap(exception);
        return failure switch
        {
            VmOptionsException => ExitCodes.UsageError,
            _ when IsInputOrEnvironment(failure) => ExitCodes.InputError,
            _ => ExitCodes.InternalError,
        };
    }

    /// <summary>Reports the parse errors of <paramref name="parseResult"/> as one line.</summary>
    /// <returns><see cref="ExitCodes.UsageError"/>.</returns>
    public int ReportUsage(ParseResult parseResult)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        var path = CommandPath(parseResult.CommandResult);

        // "Required command was not provided" only adds noise beside a more specific error (an unknown
        // command, a bad value); alone, it is rephrased to list the commands that would fit.
        var specific = parseResult.Errors
            .Where(e => !IsMissingCommand(e))
            .Select(e => OneLine(e.Message))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        var commands = parseResult.CommandResult.Command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name);
        var message = specific.Count > 0
            ? string.Join("; ", specific)
            : $"'{path}' needs a command: {string.Join(", ", commands)}";
        _error.WriteLine($"{Prefix}{message} (see '{path} --help')");
        return ExitCodes.UsageError;
    }

    /// <summary>
    /// Reports an exception that escaped a command as one line (see the class remarks for the rule); at
    /// <see cref="LogLevel.Debug"/> or below, the full exception with its stack follows.
    /// </summary>
    /// <returns><see cref="ExitCodeOf"/> the exception.</returns>
    public int Report(Exception exception, LogLevel logLevel)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var failure = Unwrap(exception);
        var detailed = logLevel <= LogLevel.Debug;
        var exitCode = ExitCodeOf(failure);
        if (exitCode != ExitCodes.InternalError)
        {
            _error.WriteLine(Prefix + OneLine(UserMessage(failure)));
        }
        else
        {
            var line = $"{InternalPrefix}{failure.GetType().Name}: {OneLine(failure.Message)}";
            _error.WriteLine(detailed ? line : $"{line} {DetailsHint}");
        }

        if (detailed)
        {
            _error.WriteLine(exception.ToString());
        }

        return exitCode;
    }

    /// <summary>Collapses a message to one line (some library messages list alternatives on new lines).</summary>
    internal static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>The message without the "(Parameter 'x')" suffix that names a C# parameter, not user input.</summary>
    private static string UserMessage(Exception exception)
    {
        var message = exception.Message;
        if (exception is ArgumentException { ParamName: { } name })
        {
            var suffix = $" (Parameter '{name}')";
            var at = message.IndexOf(suffix, StringComparison.Ordinal);
            if (at >= 0)
            {
                message = message.Remove(at, suffix.Length);
            }
        }

        return message;
    }

    private static bool IsMissingCommand(ParseError error) =>
        error.SymbolResult is CommandResult && error.Message == RequiredCommandMessage;

    private static Exception Unwrap(Exception exception)
    {
        while (exception is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException
            && exception.InnerException is { } inner)
        {
            exception = inner;
        }

        return exception;
    }

    private static string CommandPath(CommandResult command)
    {
        // The root is always shown as "hv", whatever the host executable is called (tests run in testhost);
        // a subcommand as the user typed it, so an alias (demo notifier) points at the help they asked for.
        var names = new List<string>();
        for (SymbolResult? result = command; result is CommandResult current; result = current.Parent)
        {
            names.Add(current.Parent is null ? "hv" : current.IdentifierToken?.Value ?? current.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }
}
