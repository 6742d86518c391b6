namespace Hypervisor.Vmm.Cli.Output;

/// <summary>One row of a <see cref="ReportTable"/>.</summary>
/// <param name="Cells">One text per column.</param>
/// <param name="Emphasis">True for rows that head a group (styled on a terminal, unmarked in plain text).</param>
internal sealed record ReportRow(IReadOnlyList<string> Cells, bool Emphasis);
