using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// Fuzzes the interpreter with pages of random instructions (<see cref="InstructionFuzzer"/>): a fixed-seed sample in
/// the default run, and a long run of 100 000+ inputs in the Stress category:
/// <c>dotnet test tests/Vmm.Tests -c Release --filter "TestCategory=Stress&amp;FullyQualifiedName~Fuzz"</c>.
/// </summary>
public sealed class InstructionFuzzTests
{
    /// <summary>Inputs of the default run's sample (seeds 0 …).</summary>
    public const int SampleInputs = 2_000;

    /// <summary>Inputs of the long run (seeds from <see cref="LongRunFirstSeed"/>), unless HV_FUZZ_INPUTS says otherwise.</summary>
    public const int LongRunInputs = 100_000;

    /// <summary>The long run's first seed: clear of the sample's.</summary>
    public const ulong LongRunFirstSeed = 1_000_000;

    // Generous: an input is 10 000 instructions (a few milliseconds), but the machine has two cores shared with other work.
    // The worst budget unit is one chunk of a repeated string instruction: X86Cpu.RepChunk element iterations,
    // RepDeviceChunk MMIO or port exits or RepBulkChunkPages bulk pages, a fraction of a millisecond each, so an input
    // stays within seconds.
    private static readonly TimeSpan PerInputLimit = TimeSpan.FromSeconds(20);

    [Test]
    public void FixedSeedSampleOfInstructionPagesEndsInAHaltAnExceptionOrAReport()
    {
        var report = FuzzDriver.Run(InstructionGen.Case, InstructionFuzzer.Run, c => c.ToString(), 0, SampleInputs, PerInputLimit);
        TestContext.Out.WriteLine(report.Summarize("instruction pages"));
        Assert.Multiple(() =>
        {
            Assert.That(report.Failures, Is.Empty, () => report.Summarize("instruction pages"));
            Assert.That(report.Inputs, Is.EqualTo(SampleInputs));
            Assert.That(report.Outcomes.Keys.Count(k => k.Contains("exception #", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(8), "the sample raises many kinds of guest exception");
        });
    }

    [Test]
    [Explicit("long run: 100 000 inputs, several minutes")]
    [Category(TestCategories.Stress)]
    public void LongRunOfInstructionPagesEndsInAHaltAnExceptionOrAReport()
    {
        var inputs = long.TryParse(Environment.GetEnvironmentVariable("HV_FUZZ_INPUTS"), out var n) ? n : LongRunInputs;
        var report = FuzzDriver.Run(InstructionGen.Case, InstructionFuzzer.Run, c => c.ToString(), LongRunFirstSeed, inputs, PerInputLimit);
        TestContext.Out.WriteLine(report.Summarize("instruction pages (long run)"));
        Assert.That(report.Failures, Is.Empty, () => report.Summarize("instruction pages (long run)"));
        Assert.That(report.Inputs, Is.EqualTo(inputs));
    }
}
