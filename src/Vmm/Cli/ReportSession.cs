using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The <c>--json</c> / <c>--report FILE.html</c> of one command invocation: the report captured as it is written, the
/// counter history of every VM the command builds (current while the command runs), the command's typed counters, and
/// the HTML file, created up front so a bad path fails before anything runs. <see cref="Finish"/> writes the JSON
/// document to standard output and the page to the file; disposing a session that never wrote removes the file.
/// </summary>
internal sealed class ReportSession : IDisposable
{
    private readonly FileStream? _html;
    private readonly IDisposable _current;
    private readonly List<ReportCounter> _counters = [];
    private readonly Dictionary<int, List<ReportCounter>> _vmCounters = [];
    private bool _written;
    private bool _disposed;

    private ReportSession(string kind, string command, bool json, string? htmlPath, FileStream? html)
    {
        Kind = kind;
        Command = command;
        Json = json;
        HtmlPath = htmlPath;
        _html = html;
        History = new CounterHistory();
        _current = History.MakeCurrent();
    }

    /// <summary>The schema name and version every document carries.</summary>
    public const string Schema = "hv-report/1";

    /// <summary>What ran (<c>run</c>, <c>bench.zap</c>, <c>demo.swap</c>, …): the document's <c>kind</c>.</summary>
    public string Kind { get; }

    /// <summary>The command line, from <c>hv</c>.</summary>
    public string Command { get; }

    /// <summary>True under <c>--json</c>: the JSON document is standard output's only content.</summary>
    public bool Json { get; }

    /// <summary>The <c>--report</c> path as given; null without it.</summary>
    public string? HtmlPath { get; }

    /// <summary>The counter history of the command's VMs.</summary>
    public CounterHistory History { get; }

    /// <summary>The report as the command wrote it.</summary>
    public ReportDocument Document { get; } = new();

    /// <summary>The command's own counters (top-level <c>counters</c>): host-wide figures, in the order added.</summary>
    public IReadOnlyList<ReportCounter> Counters => _counters;

    /// <summary>
    /// Opens a session; false with the reason when <paramref name="htmlPath"/> cannot be created. Makes the session's
    /// history <see cref="CounterHistory.Current"/> on this execution context until it is disposed.
    /// </summary>
    public static bool TryCreate(string kind, string command, bool json, string? htmlPath, out ReportSession? session, out string? reason)
    {
        session = null;
        reason = null;
        FileStream? html = null;
        if (htmlPath is not null)
        {
            if (htmlPath.Length == 0 || Directory.Exists(htmlPath))
            {
                reason = htmlPath.Length == 0 ? "the path is empty" : "it is a folder";
                return false;
            }

            try
            {
                html = new FileStream(htmlPath, FileMode.Create, FileAccess.Write, FileShare.Read);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                reason = exception.Message;
                return false;
            }
        }

        session = new ReportSession(kind, command, json, htmlPath, html);
        return true;
    }

    /// <summary>The writer a command's report goes through: captured, and also written as text unless <see cref="Json"/>.</summary>
    public ReportWriter Capture(ReportWriter text) => new CapturingReportWriter(Document, Json ? null : text);

    /// <summary>Adds a top-level counter.</summary>
    public void AddCounter(string name, double value) => _counters.Add(new ReportCounter(name, value));

    /// <summary>Adds top-level counters.</summary>
    public void AddCounters(IEnumerable<ReportCounter> counters) => _counters.AddRange(counters);

    /// <summary>
    /// Adds <paramref name="vm"/>'s typed counters (its <c>vms[]</c> entry) and names its series <paramref name="label"/>;
    /// a VM without a series (a KVM run's, which the history does not sample) gives them to the top-level counters.
    /// </summary>
    public void AddVmCounters(Vm vm, string label, IEnumerable<ReportCounter> counters)
    {
        ArgumentNullException.ThrowIfNull(vm);
        History.Name(vm, label);
        if (History.IdOf(vm) is { } id)
        {
            _vmCounters[id] = [.. counters];
        }
        else
        {
            _counters.AddRange(counters);
        }
    }

    /// <summary>The typed counters of the VM whose series is <paramref name="id"/>, or none.</summary>
    public IReadOnlyList<ReportCounter> VmCounters(int id) => _vmCounters.TryGetValue(id, out var counters) ? counters : [];

    /// <summary>
    /// Stops the history and writes what was asked: the JSON document on <paramref name="output"/> (the real standard
    /// output) and the page to the file. Nothing is written when the command wrote no report (it failed before one, with
    /// its own error line). Returns <paramref name="exitCode"/>, or <see cref="ExitCodes.InputError"/> (with one line on
    /// <paramref name="error"/>) when the page could not be written to a run that otherwise succeeded.
    /// </summary>
    public int Finish(int exitCode, TextWriter output, TextWriter error)
    {
        History.Dispose();
        if (Document.Title is null)
        {
            return exitCode;
        }

        var series = History.Snapshot();
        if (Json)
        {
            ReportJsonWriter.Write(output, this, exitCode, series);
        }

        if (_html is null)
        {
            return exitCode;
        }

        try
        {
            using (var writer = new StreamWriter(_html, new System.Text.UTF8Encoding(false), leaveOpen: true))
            {
                ReportHtmlWriter.Write(writer, this, exitCode, series);
            }

            _html.Flush();
            _written = true;
        }
        catch (IOException exception)
        {
            error.WriteLine($"{CliErrorHandler.Prefix}--report {HtmlPath}: the page could not be written: {CliErrorHandler.OneLine(exception.Message)}");
            return exitCode == ExitCodes.Success ? ExitCodes.InputError : exitCode;
        }

        error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hv: report: {series.Count} VM(s) charted in {HtmlPath}"));
        return exitCode;
    }

    /// <summary>Stops the history, restores the previous current history, closes the file (removed when nothing was written).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        History.Dispose();
        _current.Dispose();
        if (_html is null)
        {
            return;
        }

        _html.Dispose();
        if (!_written)
        {
            try
            {
                File.Delete(_html.Name);
            }
            catch (IOException)
            {
                // Left behind empty: nothing to report.
            }
        }
    }
}
