namespace Hypervisor.Vmm.Cli.Output;

/// <summary>One block of a captured report: a paragraph (its lines) or a table, in the order the report wrote them.</summary>
/// <param name="Lines">The paragraph's lines; null for a table.</param>
/// <param name="Table">The table; null for a paragraph.</param>
internal sealed record ReportBlock(IReadOnlyList<string>? Lines, ReportTable? Table);
