using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.OracleCatalog;
using static Hypervisor.Vmm.Tests.Cpu.Operand;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class StackTests
{
    private const ulong Data = CpuTestMachine.DataAddress;
    private const ulong Top = CpuTestMachine.StackTop;

    [Test]
    public void PushAndPopRegistersImmediatesAndMemory([Values(32, 64)] int bitness)
    {
        var slot = (ulong)(bitness / 8);
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            if (bitness == 64)
            {
                a.mov(rax, 0x1122_3344_5566_7788L);
                a.push(rax);
                a.push(-2);
                a.push(__qword_ptr[rbx]);
                a.pop(rcx);
                a.pop(__qword_ptr[rbx + 8]);
                a.pop(rdx);
                a.push(0x1234);
            }
            else
            {
                a.mov(eax, 0x5566_7788);
                a.push(eax);
                a.push(-2);
                a.push(__dword_ptr[ebx]);
                a.pop(ecx);
                a.pop(__dword_ptr[ebx + 8]);
                a.pop(edx);
                a.push(0x1234);
            }

            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt64(Data, 0xAAAA_BBBB_CCCC_DDDDUL);
        });
        var all = bitness == 64 ? ulong.MaxValue : uint.MaxValue;
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RCX], Is.EqualTo(0xAAAA_BBBB_CCCC_DDDDUL & all));
            Assert.That(m.ReadUInt64(Data + 8) & all, Is.EqualTo(ulong.MaxValue - 1 & all));
            Assert.That(m[Register.RDX], Is.EqualTo((bitness == 64 ? 0x1122_3344_5566_7788UL : 0x5566_7788UL)));
            Assert.That(m[StackPointer(bitness)], Is.EqualTo(Top - slot));
            Assert.That(m.StackSlot(0), Is.EqualTo(0x1234));
        });
    }

    [Test]
    public void PushfAndPopfMoveTheFlags([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(eax, 0x7FFF_FFFF);
            a.add(eax, 1);
            if (bitness == 64)
            {
                a.pushfq();
                a.pop(rsi);
                a.push((int)(Cf | Zf | (1 << 10) | 2));
                a.popfq();
            }
            else
            {
                a.pushfd();
                a.pop(esi);
                a.push((int)(Cf | Zf | (1 << 10) | 2));
                a.popfd();
            }

            a.setc(cl);
            a.sete(ch);
            a.sets(dl);
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI] & Arithmetic, Is.EqualTo(Of | Sf | Pf | Af));
            Assert.That(m[Register.CX], Is.EqualTo(0x0101));
            Assert.That(m[Register.DL], Is.EqualTo(0));
            Assert.That(m.Rflags & (1UL << 10), Is.Not.Zero, "DF came from POPF");
        });
    }

    [Test]
    public void PushaAndPopaSaveAndRestoreTheEightRegisters()
    {
        using var m = CpuTestMachine.Execute(32, a =>
        {
            a.mov(eax, 1);
            a.mov(ecx, 2);
            a.mov(edx, 3);
            a.mov(ebx, 4);
            a.mov(ebp, 6);
            a.mov(esi, 7);
            a.mov(edi, 8);
            a.pushad();
            a.mov(edi, __dword_ptr[esp + 12]);
            a.mov(__dword_ptr[esp + 12], 0xDEAD);
            a.mov(eax, 0);
            a.mov(ebp, 0);
            a.popad();
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX], Is.EqualTo(1));
            Assert.That(m[Register.EBP], Is.EqualTo(6));
            Assert.That(m[Register.EDI], Is.EqualTo(8));
            Assert.That(m[Register.ESP], Is.EqualTo(Top), "POPAD skips the saved ESP");
            Assert.That(m.ReadUInt32(Top - 32 + 12), Is.EqualTo(0xDEAD));
            Assert.That(m.ReadUInt32(Top - 32 + 28), Is.EqualTo(1), "EAX is pushed first");
        });
    }

    [Test]
    public void PushadStoresTheOriginalEsp()
    {
        using var m = CpuTestMachine.Execute(32, a =>
        {
            a.pushad();
            a.mov(eax, __dword_ptr[esp + 12]);
            a.hlt();
        });
        Assert.That(m[Register.EAX], Is.EqualTo(Top));
    }

    [Test]
    public void EnterBuildsAFrameAndLeaveTearsItDown([Values(32, 64)] int bitness)
    {
        var slot = (ulong)(bitness / 8);
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(ebp, 0x7_0000);
            a.enter(0x20, 0);
            if (bitness == 64)
            {
                a.mov(rsi, rbp);
                a.mov(rdi, rsp);
                a.leave();
            }
            else
            {
                a.mov(esi, ebp);
                a.mov(edi, esp);
                a.leave();
            }

            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RSI], Is.EqualTo(Top - slot));
            Assert.That(m[Register.RDI], Is.EqualTo(Top - slot - 0x20));
            Assert.That(m[Register.RBP], Is.EqualTo(0x7_0000));
            Assert.That(m[StackPointer(bitness)], Is.EqualTo(Top));
        });
    }

    [Test]
    public void EnterWithANestingLevelCopiesTheFramePointers()
    {
        using var m = CpuTestMachine.Execute(32, a =>
        {
            a.mov(ebp, (int)Top - 0x100);
            a.mov(__dword_ptr[ebp - 4], 0x1111);
            a.enter(8, 2);
            a.hlt();
        });
        var frame = Top - 4;
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EBP], Is.EqualTo(frame));
            Assert.That(m.ReadUInt32(frame), Is.EqualTo(Top - 0x100), "the old EBP");
            Assert.That(m.ReadUInt32(frame - 4), Is.EqualTo(0x1111), "the enclosing frame's pointer");
            Assert.That(m.ReadUInt32(frame - 8), Is.EqualTo(frame), "this frame's pointer");
            Assert.That(m[Register.ESP], Is.EqualTo(frame - 8 - 8));
        });
    }
}
