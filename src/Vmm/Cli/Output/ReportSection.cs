namespace Hypervisor.Vmm.Cli.Output;

/// <summary>A section of a captured report: its heading (null for what comes before the first one) and its blocks.</summary>
internal sealed class ReportSection(string? title)
{
    /// <summary>The heading; null for the blocks before the report's first section.</summary>
    public string? Title { get; } = title;

    /// <summary>Paragraphs and tables, in order.</summary>
    public List<ReportBlock> Blocks { get; } = [];
}
