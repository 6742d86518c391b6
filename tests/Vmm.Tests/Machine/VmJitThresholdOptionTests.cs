using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary><see cref="VmOptions.JitThreshold"/>: at least 1, named in the refusal.</summary>
public sealed class VmJitThresholdOptionTests
{
    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(int.MinValue)]
    public void AThresholdBelowOneIsRefused(int threshold)
    {
        var error = Assert.Throws<VmOptionsException>(() => new VmOptions { JitThreshold = threshold }.Validate());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Rule, Is.EqualTo(VmOptionRule.JitThreshold));
            Assert.That(error.Message, Does.Contain($"at least 1, got {threshold}"));
        });
    }

    [TestCase(1)]
    [TestCase(int.MaxValue)]
    public void AThresholdOfOneOrMoreIsAccepted(int threshold) =>
        Assert.DoesNotThrow(() => new VmOptions { JitThreshold = threshold }.Validate());
}
