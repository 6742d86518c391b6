namespace Hypervisor.Vmm.Cli.Output;

/// <summary>One named figure of a report's JSON (<c>counters</c>): a count, or a ratio where the name says so.</summary>
/// <param name="Name">The text report's figure name: Linux's own names as they are (<c>pswpout</c>,
/// <c>ksm_merging_pages</c>), other figures lower-cased with underscores (<c>ept_violations</c>).</param>
/// <param name="Value">The value; written as an integer when it is one.</param>
internal readonly record struct ReportCounter(string Name, double Value);
