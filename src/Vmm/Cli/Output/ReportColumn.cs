namespace Hypervisor.Vmm.Cli.Output;

/// <summary>One column of a <see cref="ReportTable"/>.</summary>
/// <param name="Header">The column heading.</param>
/// <param name="AlignRight">True for numbers.</param>
/// <param name="Wrap">True for columns that may wrap when a terminal is too narrow; the others never wrap.</param>
internal sealed record ReportColumn(string Header, bool AlignRight = false, bool Wrap = false);
