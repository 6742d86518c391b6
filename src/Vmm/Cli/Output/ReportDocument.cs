namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// A command's report as written through a <see cref="ReportWriter"/>: its title and its sections of paragraphs and
/// tables, the same text a person reads; <c>--json</c> and <c>--report</c> render it (see docs/report-schema.md).
/// </summary>
internal sealed class ReportDocument
{
    /// <summary>The report's title (its first line); null until the command wrote one.</summary>
    public string? Title { get; set; }

    /// <summary>The sections, in order; the first has no heading.</summary>
    public List<ReportSection> Sections { get; } = [new ReportSection(null)];

    /// <summary>Every table, in order.</summary>
    public IEnumerable<ReportTable> Tables => Sections.SelectMany(s => s.Blocks).Select(b => b.Table).OfType<ReportTable>();
}
