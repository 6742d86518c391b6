using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>Builds the logger factory behind <c>--log-level</c>.</summary>
internal static class CliLogging
{
    /// <summary>
    /// A factory that writes single-line console logs at <paramref name="minimum"/> and above to the
    /// process's standard error, so standard output carries only the command's results. Dispose it to flush.
    /// </summary>
    public static ILoggerFactory CreateFactory(LogLevel minimum) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(minimum);
        if (minimum == LogLevel.None)
        {
            return;
        }

        builder.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.AddSimpleConsole(options =>
        {
            options.SingleLine = true;
            options.IncludeScopes = false;
        });
    });
}
