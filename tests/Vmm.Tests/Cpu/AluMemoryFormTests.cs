using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.OracleCatalog;
using static Hypervisor.Vmm.Tests.Cpu.Operand;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>The ALU forms with a memory operand (the host oracle covers the register forms).</summary>
public sealed class AluMemoryFormTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    [Test]
    public void ArithmeticReadsAndWritesMemoryOperands([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.add(Dword(bitness), ecx);
            a.sub(edx, Dword(bitness, 4));
            a.adc(Word(bitness, 8), 1);
            a.sbb(Byte(bitness, 12), 0x10);
            a.and(Byte(bitness, 13), 0x0F);
            a.or(Dword(bitness, 16), 0x100);
            a.xor(Dword(bitness, 20), esi);
            a.inc(Dword(bitness, 24));
            a.dec(Word(bitness, 28));
            a.neg(Dword(bitness, 32));
            a.not(Byte(bitness, 36));
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 10);
            m.WriteUInt32(Data + 4, 3);
            m.WriteUInt32(Data + 8, 0xFFFF);
            m.WriteUInt32(Data + 12, 0xF00F);
            m.WriteUInt32(Data + 16, 1);
            m.WriteUInt32(Data + 20, 0xFF00);
            m.WriteUInt32(Data + 24, 0x7FFF_FFFF);
            m.WriteUInt32(Data + 28, 0);
            m.WriteUInt32(Data + 32, 5);
            m.WriteUInt32(Data + 36, 0x5A);
            m[Register.ECX] = 5;
            m[Register.EDX] = 10;
            m[Register.ESI] = 0x0FF0;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(15));
            Assert.That(m[Register.EDX], Is.EqualTo(7));
            Assert.That(m.ReadUInt16(Data + 8), Is.EqualTo(0), "CF was clear after SUB 10-3");
            Assert.That(m.ReadByte(Data + 12), Is.EqualTo(0xFE), "0x0F - 0x10 - CF(1 from the ADC carry-out)");
            Assert.That(m.ReadByte(Data + 13), Is.EqualTo(0x00));
            Assert.That(m.ReadUInt32(Data + 16), Is.EqualTo(0x101));
            Assert.That(m.ReadUInt32(Data + 20), Is.EqualTo(0xF0F0));
            Assert.That(m.ReadUInt32(Data + 24), Is.EqualTo(0x8000_0000));
            Assert.That(m.ReadUInt16(Data + 28), Is.EqualTo(0xFFFF));
            Assert.That(m.ReadUInt32(Data + 32), Is.EqualTo(0xFFFF_FFFB));
            Assert.That(m.ReadByte(Data + 36), Is.EqualTo(0xA5));
            Assert.That(m.Rflags & Arithmetic & ~Af, Is.EqualTo(Cf | Sf), "NEG of 5 sets CF and SF; NOT leaves flags");
        });
    }

    [Test]
    public void CompareAndTestAgainstMemoryOnlySetFlags([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.cmp(Dword(bitness), 0x10);
            a.setb(al);
            a.sete(ah);
            a.test(Byte(bitness), 0x80);
            a.sets(cl);
            a.cmp(ecx, Dword(bitness));
            a.setl(dl);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x8000_0000);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.AL], Is.EqualTo(0), "0x80000000 is not below 0x10 unsigned");
            Assert.That(m[Register.AH], Is.EqualTo(0));
            Assert.That(m[Register.CL], Is.EqualTo(0), "the low byte is 0");
            Assert.That(m[Register.DL], Is.EqualTo(0), "a small positive ECX is greater than INT_MIN");
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0x8000_0000));
        });
    }

    [Test]
    public void LockedReadModifyWriteOnMemory([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.@lock.add(Dword(bitness), 1);
            a.@lock.or(Dword(bitness, 4), ecx);
            a.@lock.inc(Dword(bitness, 8));
            a.@lock.sub(Word(bitness, 12), 2);
            if (bitness == 64)
            {
                a.@lock.and(Qword(16), rcx);
            }

            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0xFFFF_FFFF);
            m.WriteUInt32(Data + 4, 0xF0);
            m.WriteUInt32(Data + 8, 41);
            m.WriteUInt32(Data + 12, 1);
            m.WriteUInt64(Data + 16, ulong.MaxValue);
            m[Register.RCX] = 0x0F;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0));
            Assert.That(m.ReadUInt32(Data + 4), Is.EqualTo(0xFF));
            Assert.That(m.ReadUInt32(Data + 8), Is.EqualTo(42));
            Assert.That(m.ReadUInt16(Data + 12), Is.EqualTo(0xFFFF));
            Assert.That(m.Rflags & (Cf | Sf | Zf), Is.EqualTo(bitness == 64 ? 0 : Cf | Sf));
            if (bitness == 64)
            {
                Assert.That(m.ReadUInt64(Data + 16), Is.EqualTo(0x0F));
            }
        });
    }

    [Test]
    public void ShiftsAndRotatesOnMemory([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.shl(Dword(bitness), cl);
            a.shr(Word(bitness, 4), 1);
            a.sar(Byte(bitness, 8), 3);
            a.rol(Dword(bitness, 12), 8);
            a.stc();
            a.rcr(Byte(bitness, 16), 1);
            a.shld(Dword(bitness, 20), edx, 4);
            a.shrd(Dword(bitness, 24), edx, cl);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x8000_0001);
            m.WriteUInt32(Data + 4, 0x0003);
            m.WriteUInt32(Data + 8, 0x80);
            m.WriteUInt32(Data + 12, 0x1122_3344);
            m.WriteUInt32(Data + 16, 0x02);
            m.WriteUInt32(Data + 20, 0x0000_00FF);
            m.WriteUInt32(Data + 24, 0x0000_FF00);
            m[Register.ECX] = 4;
            m[Register.EDX] = 0xA000_000B;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0x10));
            Assert.That(m.ReadUInt16(Data + 4), Is.EqualTo(1));
            Assert.That(m.ReadByte(Data + 8), Is.EqualTo(0xF0));
            Assert.That(m.ReadUInt32(Data + 12), Is.EqualTo(0x2233_4411));
            Assert.That(m.ReadByte(Data + 16), Is.EqualTo(0x81));
            Assert.That(m.ReadUInt32(Data + 20), Is.EqualTo(0x0000_0FFA));
            Assert.That(m.ReadUInt32(Data + 24), Is.EqualTo(0xB000_0FF0));
        });
    }

    [Test]
    public void ShiftByZeroLeavesFlagsAndValue([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(edx, 0x40);
            a.xor(ecx, ecx);
            a.add(edx, 0x7FFF_FFC0);
            a.shl(edx, cl);
            a.rcl(Dword(bitness), cl);
            a.shld(edx, edx, cl);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x1234);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EDX], Is.EqualTo(0x8000_0000));
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0x1234));
            Assert.That(m.Rflags & Arithmetic, Is.EqualTo(Of | Sf | Pf), "the flags of the ADD survive count-0 shifts");
        });
    }

    [Test]
    public void MultiplyAndDivideWithMemoryOperands([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, 0x1_0000);
            a.mul(Dword(bitness));
            a.mov(esi, eax);
            a.mov(edi, edx);
            a.imul(ecx, Dword(bitness, 4), -3);
            a.mov(eax, 100);
            a.xor(edx, edx);
            a.div(Dword(bitness, 8));
            a.mov(Dword(bitness, 16), edx);
            a.mov(ax, 0xFF9C);
            a.idiv(Byte(bitness, 12));
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x3_0000);
            m.WriteUInt32(Data + 4, 7);
            m.WriteUInt32(Data + 8, 7);
            m.WriteUInt32(Data + 12, 0x07);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0));
            Assert.That(m[Register.EDI], Is.EqualTo(3));
            Assert.That(m[Register.ECX], Is.EqualTo(unchecked((uint)-21)));
            Assert.That(m.ReadUInt32(Data + 16), Is.EqualTo(2), "100 % 7");
            Assert.That(m[Register.AL], Is.EqualTo(unchecked((byte)-14)), "-100 / 7");
            Assert.That(m[Register.AH], Is.EqualTo(unchecked((byte)-2)), "-100 % 7");
        });
    }

    [TestCase(32, 35u, 4, 3, true)]
    [TestCase(32, 0xFFFF_FFFFu, -4, 31, false)]
    [TestCase(64, 35u, 4, 3, true)]
    [TestCase(64, 0xFFFF_FFFFu, -4, 31, false)]
    public void BitTestWithARegisterOffsetAddressesBeyondTheOperand(int bitness, uint offset, int byteOffset, int bit, bool initiallySet)
    {
        var target = (ulong)((long)Data + byteOffset);
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.bt(Dword(bitness), ecx);
            a.setc(al);
            a.bts(Dword(bitness), ecx);
            a.setc(ah);
            a.btc(Dword(bitness), ecx);
            a.btr(Dword(bitness), 35);
            a.setc(dl);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m[Register.ECX] = offset;
            m.WriteUInt32(Data, 0x8);
            m.WriteUInt32(target, initiallySet ? 1u << bit : 0);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.AL], Is.EqualTo(initiallySet ? 1 : 0));
            Assert.That(m[Register.AH], Is.EqualTo(initiallySet ? 1 : 0), "BTS reports the bit before setting it");
            Assert.That(m.ReadUInt32(target) & (1u << bit), Is.EqualTo(0), "BTC toggled the bit BTS set");
            Assert.That(m[Register.DL], Is.EqualTo(target == Data ? 0 : 1), "an immediate offset is taken modulo 32 within [Data]");
            Assert.That(m.ReadUInt32(Data) & 8, Is.EqualTo(0));
        });
    }
}
