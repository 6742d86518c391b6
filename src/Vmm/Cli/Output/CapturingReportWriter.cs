namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// Records a report into a <see cref="ReportDocument"/> and, when given one, also writes it through
/// <paramref name="inner"/> (the command's usual writer); without it the text report is suppressed (<c>--json</c>).
/// </summary>
internal sealed class CapturingReportWriter(ReportDocument document, ReportWriter? inner) : ReportWriter
{
    /// <inheritdoc />
    public override void Title(string text)
    {
        document.Title ??= text;
        inner?.Title(text);
    }

    /// <inheritdoc />
    public override void Section(string text)
    {
        document.Sections.Add(new ReportSection(text));
        inner?.Section(text);
    }

    /// <inheritdoc />
    public override void Paragraph(params string[] lines)
    {
        document.Sections[^1].Blocks.Add(new ReportBlock([.. lines], null));
        inner?.Paragraph(lines);
    }

    /// <inheritdoc />
    public override void Table(ReportTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        document.Sections[^1].Blocks.Add(new ReportBlock(null, table));
        inner?.Table(table);
    }
}
