using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.Operand;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class SystemInstructionTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    [Test]
    public void CpuidReportsTheVendorAndTheModelledFeatures([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.xor(eax, eax);
            a.cpuid();
            a.mov(Slot(bitness, 0), ebx);
            a.mov(Slot(bitness, 4), edx);
            a.mov(Slot(bitness, 8), ecx);
            a.mov(Slot(bitness, 12), eax);
            a.mov(eax, 1);
            a.cpuid();
            a.mov(Slot(bitness, 16), ecx);
            a.mov(Slot(bitness, 20), edx);
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.mov(Slot(bitness, 24), ebx);
            a.mov(eax, 0x8000_0001);
            a.cpuid();
            a.hlt();
        }, m => m[Register.RSI] = Data);
        Assert.Multiple(() =>
        {
            Assert.That(System.Text.Encoding.ASCII.GetString(m.ReadBytes(Data, 12)), Is.EqualTo(CpuidModel.Vendor));
            Assert.That(m.ReadUInt32(Data + 12), Is.GreaterThanOrEqualTo(7u), "the highest basic leaf");
            Assert.That(m.ReadUInt32(Data + 16), Is.EqualTo(CpuidModel.Leaf1Ecx));
            Assert.That(m.ReadUInt32(Data + 20), Is.EqualTo(CpuidModel.Leaf1Edx));
            Assert.That(m.ReadUInt32(Data + 24), Is.EqualTo(CpuidModel.Leaf7Ebx));
            Assert.That(m[Register.ECX], Is.EqualTo(CpuidModel.ExtendedEcx));
            Assert.That(m[Register.EDX], Is.EqualTo(CpuidModel.ExtendedEdx));
        });
    }

    [TestCase(true, (ushort)0x08, true, TestName = "VerrOfTheExecuteReadCodeSegmentSetsZf")]
    [TestCase(false, (ushort)0x08, false, TestName = "VerwOfACodeSegmentClearsZf")]
    [TestCase(true, (ushort)0x10, true, TestName = "VerrOfTheDataSegmentSetsZf")]
    [TestCase(false, (ushort)0x10, true, TestName = "VerwOfTheWritableDataSegmentSetsZf")]
    [TestCase(false, (ushort)0x13, false, TestName = "VerwWithRplAboveTheDplClearsZf")]
    [TestCase(false, (ushort)0x18, false, TestName = "VerwOfTheTssClearsZf")]
    [TestCase(false, (ushort)0x00, false, TestName = "VerwOfTheNullSelectorClearsZf")]
    [TestCase(false, (ushort)0x40, false, TestName = "VerwBeyondTheGdtLimitClearsZf")]
    public void VerrAndVerwReportAccessibilityInZf(bool read, ushort selector, bool accessible)
    {
        // The 32-bit machine's GDT: 0x08 code (execute/read, DPL 0), 0x10 data (read/write, DPL 0), 0x18 the TSS, 0x20 64-bit code; limit 39.
        using var m = CpuTestMachine.Execute(32, a =>
        {
            a.mov(ecx, selector);
            a.mov(eax, 0x40);      // ZF clear before
            a.test(eax, eax);
            if (read) { a.verr(cx); } else { a.verw(cx); }
            a.setz(bl);
            a.hlt();
        });
        Assert.That(m[Register.EBX] & 0xFF, Is.EqualTo(accessible ? 1u : 0u));
    }

    [Test]
    public void LarAndLslReadAValidDescriptorAndOnlyClearZfForANullOrOutOfTableSelector()
    {
        // The 32-bit machine's GDT has five entries (limit 39): 0x08 is the flat 4 GiB code segment, 0x40 lies past the table.
        using var m = CpuTestMachine.Execute(32, a =>
        {
            a.mov(ecx, 0x08);
            a.lar(eax, ecx);
            a.setz(bl);
            a.lsl(edx, ecx);
            a.setz(bh);
            a.mov(ecx, 0x40);
            a.mov(esi, 0x1234);
            a.lar(esi, ecx);
            a.setz(al);
            a.xor(ecx, ecx);
            a.lsl(edi, ecx);
            a.setz(ah);
            a.hlt();
        }, m => m[Register.EDI] = 0x5678);

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.BL], Is.EqualTo(1), "LAR of the code segment sets ZF");
            Assert.That(m[Register.BH], Is.EqualTo(1), "LSL of the code segment sets ZF");
            Assert.That(m[Register.EDX], Is.EqualTo(0xFFFF_FFFFUL), "its limit, scaled by G");
            Assert.That(m[Register.AL], Is.Zero, "a selector past the GDT's limit clears ZF without a fault");
            Assert.That(m[Register.ESI], Is.EqualTo(0x1234), "and leaves the destination alone");
            Assert.That(m[Register.AH], Is.Zero, "so does the null selector");
            Assert.That(m[Register.EDI], Is.EqualTo(0x5678));
            Assert.That(m.Cpu.Stats.ExceptionsDelivered, Is.Zero);
        });
    }

    [Test]
    public void RdtscAdvances([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.rdtsc();
            a.mov(esi, eax);
            a.mov(edi, edx);
            a.nop();
            a.nop();
            a.rdtsc();
            a.hlt();
        });
        var first = (m[Register.EDI] << 32) | m[Register.ESI];
        var second = (m[Register.EDX] << 32) | m[Register.EAX];
        Assert.That(second, Is.GreaterThan(first));
    }

    [Test]
    public void RdmsrReadsEfer([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.hlt();
        });
        Assert.That(m[Register.EAX], Is.EqualTo(bitness == 64 ? 0x500 : 0));
    }

    [Test]
    public void WrmsrOfFsAndGsBaseRelocatesSegmentRelativeLoads()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.mov(ecx, 0xC000_0100);
            a.mov(eax, (uint)Data);
            a.xor(edx, edx);
            a.wrmsr();
            a.mov(ecx, 0xC000_0101);
            a.mov(eax, (uint)Data + 0x100);
            a.wrmsr();
            a.xor(ebx, ebx);
            a.mov(rsi, __qword_ptr.fs[rbx + 8]);
            a.mov(rdi, __qword_ptr.gs[rbx]);
            a.mov(ecx, 0xC000_0100);
            a.rdmsr();
            a.hlt();
        }, m =>
        {
            m.WriteUInt64(Data + 8, 0xF5F5_F5F5_0000_0001UL);
            m.WriteUInt64(Data + 0x100, 0x6565_6565_0000_0002UL);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RSI], Is.EqualTo(0xF5F5_F5F5_0000_0001UL));
            Assert.That(m[Register.RDI], Is.EqualTo(0x6565_6565_0000_0002UL));
            Assert.That(m[Register.EAX], Is.EqualTo(Data));
            Assert.That(m.Cpu.BaseOf(SegmentRegister.Fs), Is.EqualTo(Data));
        });
    }

    [Test]
    public void LgdtLidtSgdtSidtRoundTripTheTableRegisters([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.sgdt(bitness == 64 ? __[rbx] : __[ebx]);
            a.lidt(bitness == 64 ? __[rbx + 16] : __[ebx + 16]);
            a.sidt(bitness == 64 ? __[rbx + 32] : __[ebx + 32]);
            a.lgdt(bitness == 64 ? __[rbx] : __[ebx]);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteBytes(Data + 16, [0xFF, 0x01, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        });
        var width = bitness == 64 ? 8 : 4;
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt16(Data), Is.EqualTo(bitness == 64 ? 31 : 39), "GDT limit");
            Assert.That(m.ReadUInt32(Data + 2), Is.EqualTo(0x500), "GDT base");
            Assert.That(m.ReadUInt16(Data + 32), Is.EqualTo(0x1FF));
            Assert.That(m.ReadBytes(Data + 34, width), Is.EqualTo(m.ReadBytes(Data + 18, width)));
        });
    }

    [Test]
    public void MovToAndFromControlRegisters([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            if (bitness == 64)
            {
                a.mov(rax, cr0);
                a.mov(rcx, 0x1234_5678_9ABCL);
                a.mov(cr2, rcx);
                a.mov(rdx, cr2);
                a.mov(rsi, cr3);
                a.mov(rdi, cr4);
            }
            else
            {
                a.mov(eax, cr0);
                a.mov(ecx, 0x1234_5678);
                a.mov(cr2, ecx);
                a.mov(edx, cr2);
                a.mov(edi, cr4);
                a.or(edi, 0x20);
                a.mov(cr4, edi);
                a.mov(edi, cr4);
            }

            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX] & 1, Is.EqualTo(1), "CR0.PE");
            Assert.That(m[Register.RDX], Is.EqualTo(bitness == 64 ? 0x1234_5678_9ABCUL : 0x1234_5678UL));
            Assert.That(m[Register.EDI] & 0x20, Is.EqualTo(0x20), "CR4.PAE");
            Assert.That(m.Cpu.Cr2, Is.EqualTo(m[Register.RDX]));
        });
        if (bitness == 64)
        {
            Assert.That(m[Register.RSI], Is.EqualTo(0x9000));
        }
    }

    [Test]
    public void FarJumpAfterEnablingLongModeRunsSixtyFourBitCode()
    {
        const ulong longEntry = CpuTestMachine.CodeAddress + 0x800;
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, cr4);
            a.or(eax, 0x20);
            a.mov(cr4, eax);
            a.mov(eax, 0x9000);
            a.mov(cr3, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, 0x100);
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, unchecked((int)0x8000_0000));
            a.mov(cr0, eax);
            a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, CpuTestMachine.LongCodeSelector, (uint)longEntry));
        });
        var longCode = new Assembler(64);
        longCode.mov(rax, 0x1_2345_6789L);
        longCode.hlt();
        m.WriteCode(longEntry, CpuTestMachine.Encode(longCode, longEntry));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Bitness, Is.EqualTo(64));
            Assert.That(m.Cpu.Efer & 0x500, Is.EqualTo(0x500), "LME and LMA");
            Assert.That(m[Register.RAX], Is.EqualTo(0x1_2345_6789UL));
            Assert.That(m.Cpu.SelectorOf(SegmentRegister.Cs), Is.EqualTo(CpuTestMachine.LongCodeSelector));
        });
    }

    private static AssemblerMemoryOperand Slot(int bitness, int displacement) =>
        bitness == 64 ? __dword_ptr[rsi + displacement] : __dword_ptr[esi + displacement];
}
