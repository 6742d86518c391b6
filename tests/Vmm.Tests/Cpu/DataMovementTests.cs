using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.Operand;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class DataMovementTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    [Test]
    public void MovMovesBetweenRegistersMemoryAndImmediates([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, 0x1234_5678);
            a.mov(Dword(bitness), eax);
            a.mov(Byte(bitness, 4), 0xAB);
            a.mov(Word(bitness, 6), 0xBEEF);
            a.mov(ecx, Dword(bitness));
            a.mov(dl, Byte(bitness, 4));
            a.mov(dh, Byte(bitness, 7));
            a.mov(si, Word(bitness, 6));
            a.hlt();
        }, PointAtData);
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt64(Data), Is.EqualTo(0xBEEF_00AB_1234_5678UL));
            Assert.That(m[Register.ECX], Is.EqualTo(0x1234_5678));
            Assert.That(m[Register.DX], Is.EqualTo(0xBEAB));
            Assert.That(m[Register.SI], Is.EqualTo(0xBEEF));
        });
    }

    [Test]
    public void MovWithMemoryOffsetsUsesTheAbsoluteAddress([Values(32, 64)] int bitness)
    {
        var width = bitness == 64 ? 8 : 4;
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            if (bitness == 64)
            {
                a.AddInstruction(Instruction.Create(Code.Mov_RAX_moffs64, Register.RAX, new MemoryOperand(Register.None, (long)Data, width)));
                a.AddInstruction(Instruction.Create(Code.Mov_moffs8_AL, new MemoryOperand(Register.None, (long)Data + 16, width), Register.AL));
            }
            else
            {
                a.AddInstruction(Instruction.Create(Code.Mov_EAX_moffs32, Register.EAX, new MemoryOperand(Register.None, (long)Data, width)));
                a.AddInstruction(Instruction.Create(Code.Mov_moffs8_AL, new MemoryOperand(Register.None, (long)Data + 16, width), Register.AL));
            }

            a.hlt();
        }, m => m.WriteUInt64(Data, 0x0102_0304_0506_0788UL));
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(bitness == 64 ? 0x0102_0304_0506_0788UL : 0x0506_0788UL));
            Assert.That(m.ReadByte(Data + 16), Is.EqualTo(0x88));
        });
    }

    [Test]
    public void MovOfA32BitRegisterZeroExtendsInLongMode()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.mov(rax, -1L);
            a.mov(eax, 5);
            a.mov(rcx, -1L);
            a.mov(cx, 7);
            a.mov(rdx, -1L);
            a.mov(dh, 0);
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(5));
            Assert.That(m[Register.RCX], Is.EqualTo(0xFFFF_FFFF_FFFF_0007UL));
            Assert.That(m[Register.RDX], Is.EqualTo(0xFFFF_FFFF_FFFF_00FFUL));
        });
    }

    [Test]
    public void MovzxAndMovsxExtendBytesAndWords([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.movzx(eax, Byte(bitness));
            a.movsx(ecx, Byte(bitness));
            a.movzx(edx, Word(bitness));
            a.movsx(esi, Word(bitness));
            a.mov(ah, 0x90);
            a.movsx(di, ah);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x8081_F0F1);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX] & 0xFF, Is.EqualTo(0xF1));
            Assert.That(m[Register.ECX], Is.EqualTo(0xFFFF_FFF1));
            Assert.That(m[Register.EDX], Is.EqualTo(0xF0F1));
            Assert.That(m[Register.ESI], Is.EqualTo(0xFFFF_F0F1));
            Assert.That(m[Register.DI], Is.EqualTo(0xFF90));
        });
    }

    [Test]
    public void MovsxdAndSixtyFourBitMovsxSignExtendToRax()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.movsxd(rax, __dword_ptr[rbx]);
            a.movsx(rcx, __byte_ptr[rbx + 3]);
            a.movzx(rdx, __word_ptr[rbx + 2]);
            a.mov(esi, 0x7FFF_FFFF);
            a.movsxd(rdi, esi);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x8000_0001);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(0xFFFF_FFFF_8000_0001UL));
            Assert.That(m[Register.RCX], Is.EqualTo(0xFFFF_FFFF_FFFF_FF80UL));
            Assert.That(m[Register.RDX], Is.EqualTo(0x8000));
            Assert.That(m[Register.RDI], Is.EqualTo(0x7FFF_FFFF));
        });
    }

    [Test]
    public void LeaComputesBaseIndexScaleAndDisplacement([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            if (bitness == 64)
            {
                a.lea(rax, __[rbx + rcx * 8 - 8]);
                a.lea(edx, __[rbx + rcx * 4 + 0x10]);
                a.lea(rsi, __[rcx * 2 + 0x100]);
            }
            else
            {
                a.lea(eax, __[ebx + ecx * 8 - 8]);
                a.lea(edx, __[ebx + ecx * 4 + 0x10]);
                a.lea(esi, __[ecx * 2 + 0x100]);
            }

            a.lea(di, __[ebx + ecx]);
            a.hlt();
        }, m =>
        {
            m[Register.RBX] = 0x1000;
            m[Register.RCX] = 3;
            m[Register.RDI] = 0xFFFF_0000;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(0x1010));
            Assert.That(m[Register.RDX], Is.EqualTo(0x101C));
            Assert.That(m[Register.RSI], Is.EqualTo(0x106));
            Assert.That(m[Register.RDI], Is.EqualTo(0xFFFF_1003));
        });
    }

    [Test]
    public void LeaWithThirtyTwoBitAddressSizeWrapsAtFourGiB([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            if (bitness == 64)
            {
                a.lea(rax, __[ebx + ecx + 0x10]);
                a.lea(rdx, __[rbx + rcx + 0x10]);
            }
            else
            {
                a.lea(eax, __[ebx + ecx + 0x10]);
            }

            a.hlt();
        }, m =>
        {
            m[Register.RBX] = 0xFFFF_FFF0;
            m[Register.RCX] = 0x20;
        });
        Assert.That(m[Register.RAX], Is.EqualTo(0x20));
        if (bitness == 64)
        {
            Assert.That(m[Register.RDX], Is.EqualTo(0x1_0000_0020UL));
        }
    }

    [Test]
    public void MemoryAccessWithThirtyTwoBitAddressSizeWraps([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, __dword_ptr[ebx + (int)Data + 0x10]);
            a.hlt();
        }, m =>
        {
            m[Register.RBX] = 0xFFFF_FFF0;
            m.WriteUInt32(Data, 0xCAFE_F00D);
        });
        Assert.That(m[Register.EAX], Is.EqualTo(0xCAFE_F00D));
    }

    [Test]
    public void LeaRipRelativeIsTheLabelAddress()
    {
        var target = default(Label);
        using var m = CpuTestMachine.With(64, a =>
        {
            target = a.CreateLabel();
            a.lea(rax, __[target]);
            a.mov(rcx, __qword_ptr[target]);
            a.hlt();
            a.Label(ref target);
            a.dq(0x1122_3344_5566_7788UL);
        });
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(m.AddressOf(target)));
            Assert.That(m[Register.RCX], Is.EqualTo(0x1122_3344_5566_7788UL));
        });
    }

    [Test]
    public void XchgSwapsRegistersAndMemory([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, 1);
            a.mov(ecx, 2);
            a.xchg(eax, ecx);
            a.mov(edx, 3);
            a.xchg(Dword(bitness), edx);
            a.mov(ah, 0x44);
            a.xchg(Byte(bitness, 8), ah);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x77);
            m.WriteUInt32(Data + 8, 0x55);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ECX], Is.EqualTo(1));
            Assert.That(m[Register.AL], Is.EqualTo(2));
            Assert.That(m[Register.EDX], Is.EqualTo(0x77));
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(3));
            Assert.That(m[Register.AH], Is.EqualTo(0x55));
            Assert.That(m.ReadByte(Data + 8), Is.EqualTo(0x44));
        });
    }

    [TestCase(32, 0x10u, true)]
    [TestCase(32, 0x0Fu, false)]
    [TestCase(64, 0x10u, true)]
    [TestCase(64, 0x0Fu, false)]
    public void CmpxchgOnMemoryStoresOnlyWhenTheAccumulatorMatches(int bitness, uint accumulator, bool equal)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.@lock.cmpxchg(Dword(bitness), ecx);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0x10);
            m[Register.EAX] = accumulator;
            m[Register.ECX] = 0x99;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(equal ? 0x99u : 0x10u));
            Assert.That(m[Register.EAX], Is.EqualTo(0x10));
            Assert.That(m.Rflags & OracleCatalog.Zf, Is.EqualTo(equal ? OracleCatalog.Zf : 0));
            Assert.That(m.Rflags & OracleCatalog.Cf, Is.EqualTo(equal ? 0 : OracleCatalog.Cf), "CF as CMP accumulator, destination");
        });
    }

    [TestCase(32, true)]
    [TestCase(32, false)]
    [TestCase(64, true)]
    [TestCase(64, false)]
    public void Cmpxchg8bComparesEdxEax(int bitness, bool equal)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.@lock.cmpxchg8b(bitness == 64 ? __qword_ptr[rsi] : __qword_ptr[esi]);
            a.hlt();
        }, m =>
        {
            m[Register.RSI] = Data;
            m.WriteUInt64(Data, 0x1111_2222_3333_4444UL);
            m[Register.EDX] = 0x1111_2222;
            m[Register.EAX] = equal ? 0x3333_4444u : 0x3333_4445u;
            m[Register.ECX] = 0xAAAA_BBBB;
            m[Register.EBX] = 0xCCCC_DDDD;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt64(Data), Is.EqualTo(equal ? 0xAAAA_BBBB_CCCC_DDDDUL : 0x1111_2222_3333_4444UL));
            Assert.That(m[Register.EAX], Is.EqualTo(0x3333_4444));
            Assert.That(m[Register.EDX], Is.EqualTo(0x1111_2222));
            Assert.That(m.Rflags & OracleCatalog.Zf, Is.EqualTo(equal ? OracleCatalog.Zf : 0));
        });
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cmpxchg16bComparesRdxRax(bool equal)
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.@lock.cmpxchg16b(__xmmword_ptr[rsi]);
            a.hlt();
        }, m =>
        {
            m[Register.RSI] = Data;
            m.WriteUInt64(Data, 1);
            m.WriteUInt64(Data + 8, 2);
            m[Register.RAX] = equal ? 1UL : 7UL;
            m[Register.RDX] = 2;
            m[Register.RBX] = 0x1_0000_0003UL;
            m[Register.RCX] = 0x1_0000_0004UL;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt64(Data), Is.EqualTo(equal ? 0x1_0000_0003UL : 1UL));
            Assert.That(m.ReadUInt64(Data + 8), Is.EqualTo(equal ? 0x1_0000_0004UL : 2UL));
            Assert.That(m[Register.RAX], Is.EqualTo(1));
            Assert.That(m.Rflags & OracleCatalog.Zf, Is.EqualTo(equal ? OracleCatalog.Zf : 0));
        });
    }

    [Test]
    public void LockedXaddOnMemoryReturnsTheOldValueAndSetsAddFlags([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.@lock.xadd(Dword(bitness), ecx);
            a.@lock.xadd(Byte(bitness, 8), dl);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt32(Data, 0xFFFF_FFFF);
            m.WriteUInt32(Data + 8, 0x70);
            m[Register.ECX] = 1;
            m[Register.EDX] = 0x10;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0));
            Assert.That(m[Register.ECX], Is.EqualTo(0xFFFF_FFFF));
            Assert.That(m.ReadByte(Data + 8), Is.EqualTo(0x80));
            Assert.That(m[Register.DL], Is.EqualTo(0x70));
            Assert.That(m.Rflags & OracleCatalog.Arithmetic, Is.EqualTo(OracleCatalog.Of | OracleCatalog.Sf), "0x70 + 0x10: signed overflow to 0x80");
        });
    }

    [Test]
    public void BswapReversesBytes([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, 0x1122_3344);
            a.bswap(eax);
            if (bitness == 64)
            {
                a.mov(rcx, 0x0102_0304_0506_0708L);
                a.bswap(rcx);
            }

            a.hlt();
        });
        Assert.That(m[Register.EAX], Is.EqualTo(0x4433_2211));
        if (bitness == 64)
        {
            Assert.That(m[Register.RCX], Is.EqualTo(0x0807_0605_0403_0201UL));
        }
    }
}
