namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>One input that broke a fuzz property: its seed (to regenerate it), the input as text, and what went wrong.</summary>
/// <param name="Seed">The PCG seed that generates the input (with <see cref="FuzzDriver.Stream"/>).</param>
/// <param name="Input">The input, printed for a regression test.</param>
/// <param name="Problem">The escaped exception or the hang.</param>
internal sealed record FuzzFailure(ulong Seed, string Input, string Problem)
{
    /// <inheritdoc />
    public override string ToString() => $"seed {Seed}: {Problem}{Environment.NewLine}  input: {Input}";
}
