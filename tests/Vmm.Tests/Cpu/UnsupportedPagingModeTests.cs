using Hypervisor.Vmm.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// A guest that turns on a paging mode the walker does not model (legacy 32-bit, PAE) stops the vCPU with an
/// internal error naming the mode: the walker's <c>UnsupportedPagingMode</c> result becomes the report, not a crash
/// and not a guest fault.
/// </summary>
public sealed class UnsupportedPagingModeTests
{
    private const ulong Cr0Pg = 1UL << 31;

    [TestCase(false, "Legacy32")]
    [TestCase(true, "Pae")]
    public void EnablingPagingOutsideLongModeStopsTheVcpuWithAnInternalErrorNamingTheMode(bool pae, string mode)
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            if (pae)
            {
                a.mov(eax, cr4);
                a.or(eax, 0x20);
                a.mov(cr4, eax);
            }

            a.mov(eax, 0x9000);
            a.mov(cr3, eax);
            a.mov(eax, cr0);
            a.or(eax, unchecked((int)Cr0Pg));
            a.mov(cr0, eax);
            a.hlt();
        });

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InternalError), exit.Detail);
            Assert.That(exit.Detail, Does.StartWith($"guest paging mode {mode} "));
            Assert.That(exit.Detail, Does.Contain("is not supported by the walker"));
            Assert.That(m.Cpu.CaptureRegisters().Cr0 & Cr0Pg, Is.EqualTo(Cr0Pg), "the registers show the mode the guest switched to");
            Assert.That(m.Cpu.Stats.ExceptionsDelivered, Is.Zero, "the VM stops; the guest sees no fault");
        });
    }
}
