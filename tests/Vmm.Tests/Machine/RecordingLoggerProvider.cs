using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>A logger provider that keeps every entry with its category and event, for tests of what a mechanism logs.</summary>
public sealed class RecordingLoggerProvider : ILoggerProvider
{
    private readonly List<(string Category, LogLevel Level, EventId Event, string Message)> _entries = [];

    public IReadOnlyList<(string Category, LogLevel Level, EventId Event, string Message)> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new CategoryLogger(this, categoryName);

    public void Dispose()
    {
    }

    private void Add(string category, LogLevel level, EventId eventId, string message)
    {
        lock (_entries)
        {
            _entries.Add((category, level, eventId, message));
        }
    }

    private sealed class CategoryLogger(RecordingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider.Add(category, logLevel, eventId, formatter(state, exception));
    }
}
