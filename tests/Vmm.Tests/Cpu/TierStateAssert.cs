namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>The state two vCPUs must agree on after running the same code under different tiers.</summary>
internal static class TierStateAssert
{
    /// <summary>Asserts that <paramref name="actual"/> has <paramref name="expected"/>'s registers, RFLAGS, RIP and retired count.</summary>
    public static void Same(CpuTestMachine expected, CpuTestMachine actual, IEnumerable<Iced.Intel.Register> registers, string when) =>
        Assert.Multiple(() =>
        {
            foreach (var register in registers)
            {
                Assert.That(actual[register], Is.EqualTo(expected[register]), $"{register} {when}");
            }

            Assert.That(actual.Rflags, Is.EqualTo(expected.Rflags), $"RFLAGS {when}");
            Assert.That(actual.Cpu.Rip, Is.EqualTo(expected.Cpu.Rip), $"RIP {when}");
            Assert.That(actual.Cpu.Stats.Instructions, Is.EqualTo(expected.Cpu.Stats.Instructions), $"retired instructions {when}");
        });
}
