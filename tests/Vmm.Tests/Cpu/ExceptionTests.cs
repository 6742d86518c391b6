using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class ExceptionTests
{
    private const ulong Top = CpuTestMachine.StackTop;

    [TestCase(32, false)]
    [TestCase(32, true)]
    [TestCase(64, false)]
    [TestCase(64, true)]
    public void DivideErrorIsDeliveredThroughTheIdtWithTheFaultingRip(int bitness, bool quotientOverflow)
    {
        Label faulting = default, handler = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.mov(eax, 0);
            a.mov(edx, quotientOverflow ? 1 : 0);
            a.mov(ecx, quotientOverflow ? 1 : 0);
            a.Label(ref faulting);
            a.div(ecx);
            a.mov(edi, 1);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0xDE);
            a.hlt();
        });
        m.SetGate(0, m.AddressOf(handler));
        m.RunToHalt();
        var slot = (ulong)(bitness / 8);
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0xDE));
            Assert.That(m[Register.EDI], Is.EqualTo(0), "a fault does not complete the instruction");
            Assert.That(m.StackSlot(0), Is.EqualTo(m.AddressOf(faulting)), "#DE pushes the RIP of the DIV (no error code)");
            Assert.That(m.StackSlot(1), Is.EqualTo(CpuTestMachine.CodeSelector));
            Assert.That(m[Operand.StackPointer(bitness)], Is.EqualTo(Top - ((bitness == 64 ? 5UL : 3UL) * slot)));
        });
    }

    [Test]
    public void SignedDivideOfTheMostNegativeValueByMinusOneFaults([Values(32, 64)] int bitness)
    {
        Label handler = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            handler = a.CreateLabel();
            a.mov(eax, unchecked((int)0x8000_0000));
            a.cdq();
            a.mov(ecx, -1);
            a.idiv(ecx);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0xDE);
            a.hlt();
        });
        m.SetGate(0, m.AddressOf(handler));
        m.RunToHalt();
        Assert.That(m[Register.ESI], Is.EqualTo(0xDE));
    }

    [TestCase(32)]
    [TestCase(64)]
    public void SignedDivideWhoseDividendIsTheHostsMostNegativeIntegerFaultsInsteadOfOverflowingTheHost(int width)
    {
        // EDX:EAX (or RDX:RAX) = the most negative 64-bit (128-bit) integer, divided by -1: the quotient overflows,
        // which x86 reports as #DE and .NET as an OverflowException; the interpreter must deliver the #DE.
        Label handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            if (width == 64)
            {
                a.mov(rdx, unchecked((long)0x8000_0000_0000_0000UL));
                a.xor(eax, eax);
                a.mov(rcx, -1);
                a.idiv(rcx);
            }
            else
            {
                a.mov(edx, unchecked((int)0x8000_0000));
                a.xor(eax, eax);
                a.mov(ecx, -1);
                a.idiv(ecx);
            }

            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0xDE);
            a.hlt();
        });
        m.SetGate(0, m.AddressOf(handler));
        m.RunToHalt();

        Assert.That(m[Register.ESI], Is.EqualTo(0xDE));
    }

    [Test]
    public void AnExceptionWithoutAPresentGateTripleFaultsWithAReport([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.With(bitness, a =>
        {
            a.xor(ecx, ecx);
            a.div(ecx);
            a.hlt();
        });
        var exit = m.Run();
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.TripleFault));
            Assert.That(exit.Detail, Does.Contain("triple fault").And.Contain("DivideError"));
            Assert.That(exit.Detail, Does.Contain($"at RIP 0x{CpuTestMachine.CodeAddress + 2:x}"), "the report names the faulting instruction");
            Assert.That(m.Cpu.CaptureRegisters().Rip, Is.EqualTo(CpuTestMachine.CodeAddress + 2), "the registers stay at the fault for the report");
        });
    }

    [Test]
    public void SoftwareInterruptAndIretReturnToTheNextInstruction([Values(32, 64)] int bitness)
    {
        Label handler = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            handler = a.CreateLabel();
            a.stc();
            a.@int(0x80);
            a.setc(cl);
            a.mov(edi, 1);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0x80);
            a.clc();
            if (bitness == 64)
            {
                a.mov(rdx, __qword_ptr[rsp]);
                a.iretq();
            }
            else
            {
                a.mov(edx, __dword_ptr[esp]);
                a.iretd();
            }
        });
        m.SetGate(0x80, m.AddressOf(handler), trap: true);
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0x80));
            Assert.That(m[Register.EDI], Is.EqualTo(1));
            Assert.That(m[Register.CL], Is.EqualTo(1), "IRET restored the CF pushed by INT");
            Assert.That(m[Register.RDX], Is.EqualTo(CpuTestMachine.CodeAddress + 3), "INT n pushes the address after itself");
            Assert.That(m[Operand.StackPointer(bitness)], Is.EqualTo(Top));
        });
    }

    [Test]
    public void InterruptGateClearsIfAndIretRestoresIt([Values(32, 64)] int bitness)
    {
        Label handler = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            handler = a.CreateLabel();
            a.sti();
            a.@int(0x21);
            a.hlt();
            a.Label(ref handler);
            if (bitness == 64)
            {
                a.pushfq();
                a.pop(rsi);
                a.iretq();
            }
            else
            {
                a.pushfd();
                a.pop(esi);
                a.iretd();
            }
        });
        m.SetGate(0x21, m.AddressOf(handler));
        m.RunToHalt();
        Assert.That((m[Register.ESI] & 0x200, m.Rflags & 0x200), Is.EqualTo((0UL, 0x200UL)));
    }

    [TestCase(false, 0x0u)]
    [TestCase(true, 0x2u)]
    public void PageFaultPushesTheErrorCodeAndSetsCr2(bool write, uint errorCode)
    {
        const ulong unmapped = 0x4000_0010;
        Label faulting = default, handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.mov(rbx, (long)unmapped);
            a.Label(ref faulting);
            if (write)
            {
                a.mov(__dword_ptr[rbx], eax);
            }
            else
            {
                a.mov(eax, __dword_ptr[rbx]);
            }

            a.hlt();
            a.Label(ref handler);
            a.mov(rsi, cr2);
            a.hlt();
        });
        m.SetGate(14, m.AddressOf(handler));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RSI], Is.EqualTo(unmapped));
            Assert.That(m.Cpu.Cr2, Is.EqualTo(unmapped));
            Assert.That(m.StackSlot(0), Is.EqualTo(errorCode), "not present, supervisor, read or write");
            Assert.That(m.StackSlot(1), Is.EqualTo(m.AddressOf(faulting)));
            Assert.That(m[Register.RSP], Is.EqualTo(Top - (6 * 8)));
        });
    }

    [Test]
    public void NonCanonicalAddressRaisesGeneralProtection()
    {
        Label faulting = default, handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.mov(rbx, unchecked((long)0x8000_0000_0000_0000UL));
            a.Label(ref faulting);
            a.mov(rax, __qword_ptr[rbx]);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 13);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(handler));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(13));
            Assert.That(m.StackSlot(0), Is.EqualTo(0), "#GP(0)");
            Assert.That(m.StackSlot(1), Is.EqualTo(m.AddressOf(faulting)));
        });
    }

    [Test]
    public void MisalignedCmpxchg16bRaisesGeneralProtection()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            a.mov(esi, (int)CpuTestMachine.DataAddress + 8);
            a.cmpxchg16b(__xmmword_ptr[rsi]);
            a.hlt();
            a.Label(ref handler);
            a.mov(edi, 13);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(handler));
        m.RunToHalt();
        Assert.That(m[Register.EDI], Is.EqualTo(13));
    }

    [Test]
    public void Ud2RaisesInvalidOpcode([Values(32, 64)] int bitness)
    {
        Label faulting = default, handler = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.nop();
            a.Label(ref faulting);
            a.ud2();
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 6);
            a.hlt();
        });
        m.SetGate(6, m.AddressOf(handler));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(6));
            Assert.That(m.StackSlot(0), Is.EqualTo(m.AddressOf(faulting)), "#UD has no error code");
        });
    }

    [Test]
    public void Ud2WithoutAHandlerTripleFaults()
    {
        using var m = CpuTestMachine.With(64, a => a.ud2());
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.TripleFault), exit.Detail);
        Assert.That(exit.Detail, Does.Contain("InvalidOpcode"));
    }
}
