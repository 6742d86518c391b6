using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// Fuzzes the image loader and the boot protocols (<see cref="BootFuzzer"/>) with generated and mutated images: a
/// fixed-seed sample in the default run, and a long run of 100 000+ inputs in the Stress category:
/// <c>dotnet test tests/Vmm.Tests -c Release --filter "TestCategory=Stress&amp;FullyQualifiedName~Fuzz"</c>.
/// </summary>
public sealed class BootImageFuzzTests
{
    /// <summary>Inputs of the default run's sample (seeds 0 …).</summary>
    public const int SampleInputs = 2_000;

    /// <summary>Inputs of the long run (seeds from <see cref="LongRunFirstSeed"/>), unless HV_FUZZ_INPUTS says otherwise.</summary>
    public const int LongRunInputs = 1_000_000;

    /// <summary>The long run's first seed: clear of the sample's.</summary>
    public const ulong LongRunFirstSeed = 1_000_000;

    private static readonly TimeSpan PerInputLimit = TimeSpan.FromSeconds(10);

    [Test]
    public void FixedSeedSampleOfImagesEitherBootsOrBreaksALoaderRule()
    {
        var report = FuzzDriver.Run(BootImageGen.Case, BootFuzzer.Run, c => c.ToString(), 0, SampleInputs, PerInputLimit);
        TestContext.Out.WriteLine(report.Summarize("boot images"));
        Assert.Multiple(() =>
        {
            Assert.That(report.Failures, Is.Empty, () => report.Summarize("boot images"));
            Assert.That(report.Inputs, Is.EqualTo(SampleInputs));
            Assert.That(report.Outcomes.Keys.Count(k => k.Contains("booted", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(6), "the sample boots ELF and bzImage inputs by several protocols, not only rejects");
            Assert.That(report.Outcomes.Keys, Has.Count.GreaterThanOrEqualTo(40), "the sample reaches many loader rules");
        });
    }

    [Test]
    [Explicit("long run: 1 000 000 inputs, about two minutes")]
    [Category(TestCategories.Stress)]
    public void LongRunOfImagesEitherBootsOrBreaksALoaderRule()
    {
        var inputs = long.TryParse(Environment.GetEnvironmentVariable("HV_FUZZ_INPUTS"), out var n) ? n : LongRunInputs;
        var report = FuzzDriver.Run(BootImageGen.Case, BootFuzzer.Run, c => c.ToString(), LongRunFirstSeed, inputs, PerInputLimit);
        TestContext.Out.WriteLine(report.Summarize("boot images (long run)"));
        Assert.That(report.Failures, Is.Empty, () => report.Summarize("boot images (long run)"));
        Assert.That(report.Inputs, Is.EqualTo(inputs));
    }
}
