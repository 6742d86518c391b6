using System.Diagnostics.CodeAnalysis;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// What every <c>hv demo</c> command does around its demonstration: options the demo refuses become one
/// <c>hv: error:</c> line (exit 2), and a demonstration that did not hold becomes one internal-error line naming what
/// failed (exit 70: a lost or corrupted page, a dirty audit or a mechanism that did nothing is a bug in hv, not bad input).
/// </summary>
internal static class DemoExit
{
    /// <summary>
    /// Builds the demo with <paramref name="create"/>; its options exception <typeparamref name="TOptionsException"/>
    /// becomes one usage-error line (<paramref name="message"/> words it, by default the exception's message) and false.
    /// </summary>
    public static bool TryCreate<TDemo, TOptionsException>(CliContext context, Func<TDemo> create, [NotNullWhen(true)] out TDemo? demo, Func<TOptionsException, string>? message = null)
        where TDemo : class
        where TOptionsException : Exception
    {
        try
        {
            demo = create();
            return true;
        }
        catch (TOptionsException exception)
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{(message is null ? exception.Message : message(exception))}");
            demo = null;
            return false;
        }
    }

    /// <summary>
    /// <see cref="ExitCodes.Success"/> when the demonstration held; otherwise one line "the <paramref name="what"/>
    /// failed: …" with <paramref name="failure"/>'s words, and <see cref="ExitCodes.InternalError"/>.
    /// </summary>
    public static int Of(CliContext context, bool succeeded, string what, Func<string> failure)
    {
        if (succeeded)
        {
            return ExitCodes.Success;
        }

        context.Error.WriteLine($"{CliErrorHandler.InternalPrefix}the {what} failed: {failure()}");
        return ExitCodes.InternalError;
    }
}
