namespace Hypervisor.Vmm.Demo;

/// <summary>What <c>HostMmAuditor.Check</c> reported after one step of the demo, when it was not consistent.</summary>
/// <param name="Step">The step's label, as its mark in the timeline shows it.</param>
/// <param name="Violations">One line per violation, as the auditor wrote them.</param>
internal sealed record AuditFinding(string Step, IReadOnlyList<string> Violations);
