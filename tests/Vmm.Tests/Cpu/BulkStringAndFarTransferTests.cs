using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The page-at-a-time bulk path of REP MOVS/STOS (and its fallbacks), repeats longer than one execution chunk,
/// and far CALL/RETF through the GDT.
/// </summary>
public sealed class BulkStringAndFarTransferTests
{
    private const ulong Source = CpuTestMachine.DataAddress;
    private const ulong Destination = CpuTestMachine.DataAddress + 0x8_0000;

    [Test]
    public void RepStosAndMovsAcrossManyPagesMatchAnElementByElementCopy([Values(32, 64)] int bitness, [Values(1, 2, 4)] int size)
    {
        const int bytes = (5 * 4096) + 123;
        var elements = bytes / size;
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            // Unaligned start so the copy straddles page boundaries in the middle of the work.
            switch (size)
            {
                case 1: a.rep.movsb(); break;
                case 2: a.rep.movsw(); break;
                default: a.rep.movsd(); break;
            }

            a.mov(edi, (int)(Destination + 0x1_0000 + 7));
            a.mov(ecx, elements);
            a.mov(eax, 0x7766_5544);
            switch (size)
            {
                case 1: a.rep.stosb(); break;
                case 2: a.rep.stosw(); break;
                default: a.rep.stosd(); break;
            }

            a.hlt();
        }, m =>
        {
            var pattern = new byte[bytes];
            new Random(size).NextBytes(pattern);
            m.WriteBytes(Source + 3, pattern);
            m[Register.RSI] = Source + 3;
            m[Register.RDI] = Destination + 5;
            m[Register.RCX] = (ulong)elements;
        });

        var copied = m.ReadBytes(Destination + 5, elements * size);
        var expected = m.ReadBytes(Source + 3, elements * size);
        var filled = m.ReadBytes(Destination + 0x1_0000 + 7, elements * size);
        var fill = BitConverter.GetBytes(0x7766_5544u)[..size];
        Assert.Multiple(() =>
        {
            Assert.That(copied, Is.EqualTo(expected));
            Assert.That(filled.Chunk(size).All(chunk => chunk.SequenceEqual(fill)), Is.True, "every element holds the low bytes of EAX");
            Assert.That(m.ReadByte(Destination + 0x1_0000 + 7 + (ulong)(elements * size)), Is.Zero, "nothing past the count");
            Assert.That(m[Register.RCX], Is.Zero);
            Assert.That(m[Register.RDI], Is.EqualTo(Destination + 0x1_0000 + 7 + (ulong)(elements * size)));
            Assert.That(m[Register.RSI], Is.EqualTo(Source + 3 + (ulong)(elements * size)));
        });
    }

    [Test]
    public void ForwardOverlappingRepMovsbReplicatesAPatternAsTheElementLoopDoes([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.rep.movsb();
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Source, "abc"u8);
            m[Register.RSI] = Source;
            m[Register.RDI] = Source + 3;
            m[Register.RCX] = 9000;
        });

        var result = m.ReadBytes(Source, 9003);
        Assert.That(result.Select((b, i) => b == "abc"u8[i % 3]).All(x => x), Is.True, "destination overlaps the source one period ahead");
    }

    [Test]
    public void FarCallAndRetfGoThroughTheGdtAndReturnToTheCaller()
    {
        Label target = default, back = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            target = a.CreateLabel();
            back = a.CreateLabel();
            a.mov(esi, 1);
            a.call(CpuTestMachine.CodeSelector, 0);
            a.Label(ref back);
            a.mov(edi, 2);
            a.hlt();
            a.Label(ref target);
            a.mov(esi, 3);
            a.retf();
        });

        // Patch the far call's 32-bit offset (the assembler cannot take a label in a far pointer).
        var code = m.ReadBytes(CpuTestMachine.CodeAddress, 32);
        var call = Array.IndexOf(code, (byte)0x9A);
        m.WriteCode(CpuTestMachine.CodeAddress + (ulong)call + 1, BitConverter.GetBytes((uint)m.AddressOf(target)));
        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(3), "the far target ran");
            Assert.That(m[Register.EDI], Is.EqualTo(2), "RETF came back after the call");
            Assert.That(m[Register.ESP], Is.EqualTo(CpuTestMachine.StackTop), "CALL pushed CS:EIP and RETF popped both");
            Assert.That(m.Cpu.SelectorOf(Hypervisor.Vmm.Cpu.SegmentRegister.Cs), Is.EqualTo(CpuTestMachine.CodeSelector));
        });
    }
}
