namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// Writes a command's report: titles, paragraphs and tables, styled on a terminal
/// (<see cref="SpectreReportWriter"/>) or as plain aligned text (<see cref="PlainReportWriter"/>).
/// </summary>
internal abstract class ReportWriter
{
    /// <summary>
    /// Styled output when standard output is a terminal and <paramref name="plain"/> is false; plain aligned
    /// text otherwise (redirected output, tests, <c>--plain</c>). Under <c>--json</c> or <c>--report</c> the report is
    /// also captured for them (<see cref="ReportSession.Capture"/>), and under <c>--json</c> only captured.
    /// </summary>
    public static ReportWriter Create(CliContext context, bool plain)
    {
        ArgumentNullException.ThrowIfNull(context);
        ReportWriter text = context.IsTerminal && !plain
            ? new SpectreReportWriter(context.Output)
            : new PlainReportWriter(context.Output);
        return context.Report is { } report ? report.Capture(text) : text;
    }

    /// <summary>The report's title.</summary>
    public abstract void Title(string text);

    /// <summary>A heading that starts a section.</summary>
    public abstract void Section(string text);

    /// <summary>Lines of prose, written as given.</summary>
    public abstract void Paragraph(params string[] lines);

    /// <summary>A table.</summary>
    public abstract void Table(ReportTable table);
}
