using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>The x87 control instructions against the SDM's FNINIT state, FLDCW/FNSTCW round trips, FNSTENV's layout and the #NM rules.</summary>
public sealed class X87ControlTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    private static CpuTestMachine Run(int bitness, Action<Assembler> body)
    {
        var m = new CpuTestMachine(bitness);
        var a = new Assembler(bitness);
        var deviceNotAvailable = a.CreateLabel();
        var undefined = a.CreateLabel();
        a.mov(esi, 0);
        body(a);
        a.hlt();
        a.Label(ref deviceNotAvailable);
        a.mov(esi, 0x107);
        a.hlt();
        a.Label(ref undefined);
        a.mov(esi, 0x106);
        a.hlt();
        m.Load(a);
        m.SetGate(7, m.AddressOf(deviceNotAvailable));
        m.SetGate(6, m.AddressOf(undefined));
        m.RunToHalt();
        return m;
    }

    private static void LoadData(Assembler a, int bitness)
    {
        if (bitness == 64) { a.mov(rbx, Data); } else { a.mov(ebx, (uint)Data); }
    }

    private static AssemblerMemoryOperand At(int bitness, int offset) => bitness == 64 ? __[rbx + offset] : __[ebx + offset];

    [Test]
    public void FninitLoadsTheInitialControlWordAndClearsTheStatusWord([Values(32, 64)] int bitness)
    {
        using var m = Run(bitness, a =>
        {
            LoadData(a, bitness);
            a.mov(__word_ptr[At(bitness, 0)], 0x0272);
            a.fldcw(__word_ptr[At(bitness, 0)]);
            a.fninit();
            a.fnstcw(__word_ptr[At(bitness, 2)]);
            a.mov(eax, 0xFFFF_FFFF);
            a.fnstsw(ax);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data + 2) & 0xFFFF, Is.EqualTo(0x037F), "FCW after FNINIT (SDM: 037FH)");
            Assert.That(m[Register.EAX], Is.EqualTo(0xFFFF_0000), "FNSTSW AX writes only AX, and FSW is 0 after FNINIT");
            Assert.That(m[Register.ESI], Is.Zero, "no fault");
        });
    }

    [Test]
    public void FldcwKeepsTheWrittenControlBitsAndFnstenvStoresTheEnvironment()
    {
        using var m = Run(64, a =>
        {
            LoadData(a, 64);
            a.fninit();
            a.mov(__word_ptr[rbx], 0x0C7F);        // round toward zero, extended precision, all masked
            a.fldcw(__word_ptr[rbx]);
            a.fnstcw(__word_ptr[rbx + 2]);
            a.fnstenv(__[rbx + 16]);
            a.fnstcw(__word_ptr[rbx + 4]);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data + 2) & 0xFFFF, Is.EqualTo(0x0C7F));
            Assert.That(m.ReadUInt32(Data + 16) & 0xFFFF, Is.EqualTo(0x0C7F), "FNSTENV byte 0: FCW");
            Assert.That(m.ReadUInt32(Data + 20) & 0xFFFF, Is.Zero, "byte 4: FSW");
            Assert.That(m.ReadUInt32(Data + 24) & 0xFFFF, Is.EqualTo(0xFFFF), "byte 8: the tag word, every register empty (11)");
            Assert.That(m.ReadUInt32(Data + 4) & 0x3F, Is.EqualTo(0x3F), "FNSTENV then masks every exception");
        });
    }

    [Test]
    public void FldenvRestoresTheControlAndStatusWords()
    {
        using var m = Run(64, a =>
        {
            LoadData(a, 64);
            a.fninit();
            a.fnstenv(__[rbx + 32]);
            a.mov(__dword_ptr[rbx + 32], 0x0000_0E7F);
            a.mov(__dword_ptr[rbx + 36], 0x0000_0021);   // FSW: precision and invalid flags
            a.fldenv(__[rbx + 32]);
            a.fnstcw(__word_ptr[rbx]);
            a.fnstsw(__word_ptr[rbx + 2]);
            a.fnclex();
            a.fnstsw(__word_ptr[rbx + 4]);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data) & 0xFFFF, Is.EqualTo(0x0E7F));
            Assert.That(m.ReadUInt32(Data + 2) & 0xFFFF, Is.EqualTo(0x0021));
            Assert.That(m.ReadUInt32(Data + 4) & 0xFFFF, Is.Zero, "FNCLEX clears the exception flags");
        });
    }

    [TestCase(8, true, TestName = "WithCr0TsFninitIsDeviceNotAvailable")]
    [TestCase(4, true, TestName = "WithCr0EmFninitIsDeviceNotAvailable")]
    public void FpuInstructionsRespectCr0(int cr0Bit, bool faults)
    {
        using var m = Run(64, a =>
        {
            a.mov(rax, cr0);
            a.or(eax, cr0Bit);
            a.mov(cr0, rax);
            a.fninit();
        });
        Assert.That(m[Register.ESI], Is.EqualTo(faults ? 0x107 : 0));
    }

    [Test]
    public void WaitFaultsOnlyWithTsAndMp()
    {
        using var tsOnly = Run(64, a =>
        {
            a.mov(rax, cr0);
            a.and(eax, ~2);
            a.or(eax, 8);
            a.mov(cr0, rax);
            a.wait();
        });
        using var tsAndMp = Run(64, a =>
        {
            a.mov(rax, cr0);
            a.or(eax, 8 | 2);
            a.mov(cr0, rax);
            a.wait();
        });
        Assert.Multiple(() =>
        {
            Assert.That(tsOnly[Register.ESI], Is.Zero, "WAIT ignores TS without MP");
            Assert.That(tsAndMp[Register.ESI], Is.EqualTo(0x107));
        });
    }

    [Test]
    public void X87ArithmeticIsUndefinedRatherThanWrong()
    {
        using var m = Run(64, a =>
        {
            a.fninit();
            a.fld1();
        });
        Assert.That(m[Register.ESI], Is.EqualTo(0x106));
    }

    [TestCase((byte)0x00, (ushort)0xFFFF)]
    [TestCase((byte)0xFF, (ushort)0x0000)]
    [TestCase((byte)0x81, (ushort)0x3FFC)]
    public void TheTagWordConvertsBothWays(byte abridged, ushort full)
    {
        Assert.Multiple(() =>
        {
            Assert.That(X86Cpu.FullTagWord(abridged), Is.EqualTo(full));
            Assert.That(X86Cpu.AbridgedTag(full), Is.EqualTo(abridged));
        });
    }
}
