using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Real-address mode as an application processor meets it: the startup-IPI state (CS = vector × 0x100, IP = 0),
/// segment arithmetic (base = selector × 16), the interrupt vector table for INT n and faults, IRET, the trampoline
/// from real mode into protected mode through LGDT, CR0.PE and a far jump, and the way back down.
/// </summary>
public sealed class RealModeTests
{
    private const byte SipiVector = 0x08;
    private const ulong StartAddress = (ulong)SipiVector << 12;

    [Test]
    public void TheStartupIpiStateRunsSixteenBitCodeAtTheVectorsPageWithSegmentBasesOfSixteenTimesTheSelector()
    {
        using var m = StartedAt(a =>
        {
            a.mov(ax, 0x2000);
            a.mov(ds, ax);
            a.mov(__word_ptr[0x10], 0xBEEF);
            a.mov(bx, __word_ptr[0x10]);
            a.mov(cx, cs);
            a.mov(si, 0xFFFF);
            a.mov(__byte_ptr[si], 0x5A); // DS:0xFFFF is linear 0x2FFFF: offsets wrap at 64 KiB, bases do not
            a.hlt();
        });

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt16(0x2_0010), Is.EqualTo(0xBEEF), "DS 0x2000 is linear 0x20000");
            Assert.That(m[Register.BX], Is.EqualTo(0xBEEFUL));
            Assert.That(m[Register.CX], Is.EqualTo((ulong)SipiVector << 8), "CS = vector × 0x100");
            Assert.That(m.ReadByte(0x2_FFFF), Is.EqualTo(0x5A));
            Assert.That(m.Cpu.InRealMode, Is.True);
            Assert.That(m.Cpu.Bitness, Is.EqualTo(16));
            Assert.That(m.Cpu.Cpl, Is.Zero);
        });
    }

    [Test]
    public void IntNGoesThroughTheVectorTableAndIretReturnsWithTheFlagsItSaved()
    {
        const ushort handlerSegment = 0x0900;
        using var m = StartedAt(a =>
        {
            a.mov(sp, 0x7000);
            a.sti();
            a.@int(0x21);
            a.mov(dx, sp);
            a.pushf();
            a.pop(di);
            a.hlt();
        });
        var handler = new Assembler(16);
        handler.pushf();
        handler.pop(si); // FLAGS inside the handler: IF cleared
        handler.mov(bx, 0x1234);
        handler.mov(cx, cs);
        handler.iret();
        m.WriteCode(handlerSegment << 4, CpuTestMachine.Encode(handler, 0));
        m.WriteUInt32(0x21 * 4, (uint)handlerSegment << 16); // IVT entry 0x21: 0900:0000

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.BX], Is.EqualTo(0x1234UL));
            Assert.That(m[Register.CX], Is.EqualTo((ulong)handlerSegment), "the handler ran with CS from the vector table");
            Assert.That(m[Register.SI] & X86Cpu.FlagIf, Is.Zero, "INT clears IF");
            Assert.That(m[Register.DI] & X86Cpu.FlagIf, Is.EqualTo(X86Cpu.FlagIf), "IRET restores the IF it saved");
            Assert.That(m[Register.DX], Is.EqualTo(0x7000UL), "three 16-bit words pushed and popped");
        });
    }

    [Test]
    public void ADivideErrorIsDeliveredThroughTheVectorTableWithTheFaultingIpAndNoErrorCode()
    {
        const ushort handlerSegment = 0x0900;
        using var m = StartedAt(a =>
        {
            a.mov(sp, 0x7000);
            a.xor(cx, cx);
            a.div(cx);
            a.hlt();
        });
        var handler = new Assembler(16);
        handler.mov(bp, sp);
        handler.mov(bx, __word_ptr[bp]); // the saved IP
        handler.mov(dx, sp);
        handler.hlt();
        m.WriteCode(handlerSegment << 4, CpuTestMachine.Encode(handler, 0));
        m.WriteUInt32(0, (uint)handlerSegment << 16);

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.BX], Is.EqualTo(5UL), "IP of the DIV (after the 3-byte MOV SP and the 2-byte XOR)");
            Assert.That(m[Register.DX], Is.EqualTo(0x7000UL - 6), "FLAGS, CS and IP: no error code in real mode");
            Assert.That(m.ReadUInt16(0x7000 - 4), Is.EqualTo((ushort)(SipiVector << 8)), "the saved CS");
        });
    }

    [Test]
    public void ATrampolineEntersProtectedModeWithLgdtCr0AndAFarJump()
    {
        // The test machine's GDT (0x08 flat 32-bit code, 0x10 flat data) lies at 0x500; a GDTR image at 0x7F00.
        const ulong protectedCode = CpuTestMachine.CodeAddress;
        using var m = StartedAt(a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lgdt(__[0x7F00]);
            a.mov(eax, cr0);
            a.or(eax, 1);
            a.mov(cr0, eax);
            a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, CpuTestMachine.CodeSelector, (uint)protectedCode));
        });
        m.WriteUInt32(0x7F00, 0x0500_FFFF); // limit 0xFFFF, base 0x500 (low 16 bits)
        m.WriteUInt32(0x7F04, 0);
        var code32 = new Assembler(32);
        code32.mov(ax, CpuTestMachine.DataSelector);
        code32.mov(ds, ax);
        code32.mov(__dword_ptr[CpuTestMachine.DataAddress], 0x600D_C0DE);
        code32.mov(ebx, __dword_ptr[CpuTestMachine.DataAddress]);
        code32.hlt();
        m.WriteCode(protectedCode, CpuTestMachine.Encode(code32, protectedCode));

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EBX], Is.EqualTo(0x600D_C0DEUL));
            Assert.That(m.Cpu.InRealMode, Is.False);
            Assert.That(m.Cpu.Bitness, Is.EqualTo(32));
            Assert.That(m.Cpu.CaptureRegisters().Cs, Is.EqualTo(CpuTestMachine.CodeSelector));
        });
    }

    [Test]
    public void ClearingPeAndAFarJumpDropsA32BitGuestIntoRealMode()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, cr0);
            a.and(eax, ~1);
            a.mov(cr0, eax);
            a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, 0x0800, 0x0010));
        });
        var code16 = new Assembler(16);
        code16.mov(bx, cs);
        code16.mov(ax, 0x3000);
        code16.mov(es, ax);
        code16.mov(di, 0x20);
        code16.mov(ax, 0xCAFE);
        code16.stosw();
        code16.hlt();
        m.WriteCode(0x8010, CpuTestMachine.Encode(code16, 0x10));

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.InRealMode, Is.True);
            Assert.That(m.Cpu.Bitness, Is.EqualTo(16), "the far jump made CS a 16-bit real-mode segment");
            Assert.That(m[Register.BX], Is.EqualTo(0x0800UL));
            Assert.That(m.ReadUInt16(0x3_0020), Is.EqualTo(0xCAFE), "ES 0x3000 is linear 0x30000");
        });
    }

    [Test]
    public void LtrInRealModeIsAnInvalidOpcode()
    {
        const ushort handlerSegment = 0x0900;
        using var m = StartedAt(a =>
        {
            a.mov(sp, 0x7000);
            a.mov(ax, 0x18);
            a.ltr(ax);
            a.hlt();
        });
        var handler = new Assembler(16);
        handler.mov(bx, 6);
        handler.hlt();
        m.WriteCode(handlerSegment << 4, CpuTestMachine.Encode(handler, 0));
        m.WriteUInt32(6 * 4, (uint)handlerSegment << 16);

        m.RunToHalt();

        Assert.That(m[Register.BX], Is.EqualTo(6UL), "#UD (vector 6) through the vector table");
    }

    private static CpuTestMachine StartedAt(Action<Assembler> emit)
    {
        var m = new CpuTestMachine(32);
        try
        {
            m.Cpu.Load(InitialCpuState.ForStartupIpi(SipiVector));
            var assembler = new Assembler(16);
            emit(assembler);
            m.WriteCode(StartAddress, CpuTestMachine.Encode(assembler, 0));
            return m;
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }
}
