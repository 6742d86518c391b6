using CsCheck;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The fuzz driver reports what its properties exist to catch: an escaping exception and a hang, with the seed.</summary>
public sealed class FuzzDriverTests
{
    [Test]
    public void AnEscapingExceptionIsAFailureWithTheSeedThatReproducesIt()
    {
        var report = FuzzDriver.Run(Gen.Int[0, 1000], n => n % 7 == 3 ? throw new IndexOutOfRangeException($"bad {n}") : "ok", n => $"{n}", 0, 200, TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(report.Failures, Is.Not.Empty);
            Assert.That(report.Failures, Has.Count.LessThanOrEqualTo(FuzzDriver.MaxFailures));
            var failure = report.Failures[0];
            Assert.That(failure.Problem, Does.StartWith("IndexOutOfRangeException: bad "));
            Assert.That(FuzzDriver.Generate(Gen.Int[0, 1000], failure.Seed) % 7, Is.EqualTo(3), "the seed regenerates the failing input");
            Assert.That(failure.Input, Is.EqualTo($"{FuzzDriver.Generate(Gen.Int[0, 1000], failure.Seed)}"));
        });
    }

    [Test]
    public void AnInputThatRunsPastTheLimitIsReportedAsAHang()
    {
        using var release = new ManualResetEventSlim();
        var report = FuzzDriver.Run(Gen.Int[0, 10], n =>
        {
            if (n >= 0)
            {
                release.Wait(TimeSpan.FromSeconds(30));
            }

            return "ok";
        }, n => $"{n}", 42, 5, TimeSpan.FromMilliseconds(300));
        release.Set();

        Assert.Multiple(() =>
        {
            Assert.That(report.Failures, Has.Count.EqualTo(1));
            Assert.That(report.Failures[0].Seed, Is.EqualTo(42));
            Assert.That(report.Failures[0].Problem, Does.StartWith("hang: still running after"));
        });
    }
}
