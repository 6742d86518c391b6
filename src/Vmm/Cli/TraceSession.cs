using System.Globalization;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// A <c>--trace FILE</c> of one command: the file, created up front (so a bad path fails before the guest runs), and the
/// recorder whose events <see cref="Write"/> puts in it at the end. Disposing a session that never wrote removes the
/// file it created.
/// </summary>
internal sealed class TraceSession : IDisposable
{
    private readonly FileStream _file;
    private bool _written;

    private TraceSession(string path, FileStream file, TraceRecorder recorder)
    {
        Path = path;
        _file = file;
        Recorder = recorder;
    }

    /// <summary>The trace file's path as given.</summary>
    public string Path { get; }

    /// <summary>Where the run records.</summary>
    public TraceRecorder Recorder { get; }

    /// <summary>Creates (or truncates) <paramref name="path"/> and a recorder of <paramref name="capacity"/> events; false with the reason when the file cannot be created.</summary>
    public static bool TryCreate(string path, int capacity, out TraceSession? session, out string? reason)
    {
        session = null;
        reason = null;
        if (path.Length == 0 || Directory.Exists(path))
        {
            reason = "it is a folder";
            return false;
        }

        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            reason = exception.Message;
            return false;
        }

        session = new TraceSession(path, file, new TraceRecorder(capacity));
        return true;
    }

    /// <summary>Writes the trace (once; later calls do nothing) and says on <paramref name="log"/> how many events it holds.</summary>
    /// <param name="log">Where the one summary line goes (standard error).</param>
    /// <param name="otherData">Extra fields for the file's <c>otherData</c>.</param>
    public void Write(TextWriter log, IReadOnlyDictionary<string, string> otherData)
    {
        if (_written)
        {
            return;
        }

        _written = true;
        var snapshot = ChromeTraceWriter.Write(_file, Recorder, otherData);
        _file.Flush();
        log.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"hv: trace: {snapshot.Events.Count} events written to {Path}{(snapshot.Dropped > 0 ? $" ({snapshot.Dropped} older ones dropped: --trace-size {snapshot.Capacity})" : string.Empty)}"));
    }

    /// <summary>Writes the trace of the demo <paramref name="command"/> (its <c>otherData.command</c>), saying so on <paramref name="context"/>'s standard error.</summary>
    public void WriteFor(CliContext context, string command)
    {
        ArgumentNullException.ThrowIfNull(context);
        Write(context.Error, new Dictionary<string, string> { ["command"] = command });
    }

    /// <summary>Closes the file; removes it when nothing was written.</summary>
    public void Dispose()
    {
        _file.Dispose();
        if (!_written)
        {
            try
            {
                File.Delete(_file.Name);
            }
            catch (IOException)
            {
                // Left behind empty: nothing to report.
            }
        }
    }
}
