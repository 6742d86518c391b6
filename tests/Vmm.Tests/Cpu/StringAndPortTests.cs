using Hypervisor.Vmm.Tests.Devices;
using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.OracleCatalog;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class StringAndPortTests
{
    private const ulong Source = CpuTestMachine.DataAddress;
    private const ulong Destination = CpuTestMachine.DataAddress + 0x1000;
    private const ushort FakePort = 0x300;

    [Test]
    public void RepMovsCopiesForwardAndStosFills([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.rep.movsb();
            a.mov(eax, 0x5A5A_5A5A);
            a.mov(ecx, 3);
            a.rep.stosd();
            a.movsw();
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Source, "ABCDEFGHIJ"u8);
            m[Register.RSI] = Source;
            m[Register.RDI] = Destination;
            m[Register.RCX] = 5;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadBytes(Destination, 5), Is.EqualTo("ABCDE"u8.ToArray()));
            Assert.That(m.ReadUInt32(Destination + 5), Is.EqualTo(0x5A5A_5A5A));
            Assert.That(m.ReadUInt32(Destination + 13), Is.EqualTo(0x5A5A_5A5A));
            Assert.That(m.ReadBytes(Destination + 17, 2), Is.EqualTo("FG"u8.ToArray()));
            Assert.That(m[Register.RSI], Is.EqualTo(Source + 7));
            Assert.That(m[Register.RDI], Is.EqualTo(Destination + 19));
            Assert.That(m[Register.RCX], Is.EqualTo(0));
        });
    }

    [Test]
    public void WithDirectionFlagSetStringInstructionsWalkDown([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.std();
            a.rep.movsd();
            a.lodsd();
            a.cld();
            a.hlt();
        }, m =>
        {
            for (var n = 0u; n < 4; n++)
            {
                m.WriteUInt32(Source + (n * 4), 0x100 + n);
            }

            m[Register.RSI] = Source + 12;
            m[Register.RDI] = Destination + 12;
            m[Register.RCX] = 3;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Destination + 12), Is.EqualTo(0x103));
            Assert.That(m.ReadUInt32(Destination + 4), Is.EqualTo(0x101));
            Assert.That(m.ReadUInt32(Destination), Is.EqualTo(0), "three elements only");
            Assert.That(m[Register.EAX], Is.EqualTo(0x100), "LODSD after the copy reads the next lower element");
            Assert.That(m[Register.RSI], Is.EqualTo(Source - 4));
            Assert.That(m.Rflags & (1UL << 10), Is.Zero);
        });
    }

    [Test]
    public void RepeCmpsStopsAtTheFirstDifference([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.repe.cmpsb();
            a.setb(dl);
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Source, "abcdXf"u8);
            m.WriteBytes(Destination, "abcdef"u8);
            m[Register.RSI] = Source;
            m[Register.RDI] = Destination;
            m[Register.RCX] = 6;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RCX], Is.EqualTo(1));
            Assert.That(m[Register.RSI], Is.EqualTo(Source + 5));
            Assert.That(m.Rflags & Zf, Is.Zero);
            Assert.That(m[Register.DL], Is.EqualTo(1), "'X' is below 'e'");
        });
    }

    [Test]
    public void RepneScasFindsTheAccumulator([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(al, 0);
            a.repne.scasb();
            a.mov(esi, ecx);
            a.mov(ax, 0x4242);
            a.mov(ecx, 2);
            a.repe.scasw();
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Destination, "hello\0BBBBxx"u8);
            m[Register.RDI] = Destination;
            m[Register.RCX] = 100;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(94), "the NUL is the sixth byte");
            Assert.That(m[Register.RDI], Is.EqualTo(Destination + 10));
            Assert.That(m[Register.ECX], Is.EqualTo(0));
            Assert.That(m.Rflags & Zf, Is.EqualTo(Zf));
        });
    }

    [Test]
    public void StringInstructionsWithoutRepIgnoreTheCounter([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.stosb();
            a.scasb();
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Destination, [0, 0x41]);
            m[Register.RDI] = Destination;
            m[Register.RCX] = 0;
            m[Register.RAX] = 0x41;
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadByte(Destination), Is.EqualTo(0x41));
            Assert.That(m[Register.RDI], Is.EqualTo(Destination + 2));
            Assert.That(m.Rflags & Zf, Is.EqualTo(Zf));
        });
    }

    [Test]
    public void RepWithAZeroCounterDoesNothing([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.rep.movsb();
            a.hlt();
        }, m =>
        {
            m.WriteBytes(Source, [1]);
            m[Register.RSI] = Source;
            m[Register.RDI] = Destination;
        });
        Assert.That((m.ReadByte(Destination), m[Register.RSI]), Is.EqualTo(((byte)0, Source)));
    }

    [Test]
    public void InAndOutReachThePortDevice([Values(32, 64)] int bitness)
    {
        var device = new FakePortDevice("fake", 0xCAFE_BABE);
        using var m = CpuTestMachine.With(bitness, a =>
        {
            a.mov(al, 0x11);
            a.@out(0x80, al);
            a.mov(dx, FakePort + 2);
            a.mov(eax, 0x2233_4455);
            a.@out(dx, eax);
            a.@in(al, 0x81);
            a.mov(cl, al);
            a.@in(ax, dx);
            a.mov(si, ax);
            a.@in(eax, dx);
            a.hlt();
        });
        m.Bus.RegisterPorts(0x80, 2, device);
        m.Bus.RegisterPorts(FakePort, 8, device);
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(device.Accesses[0], Is.EqualTo(("write", (ushort)0x80, 1, 0x11u)));
            Assert.That(device.Accesses[1], Is.EqualTo(("write", (ushort)(FakePort + 2), 4, 0x2233_4455u)));
            Assert.That(device.Accesses.Skip(2).Select(x => (x.Kind, x.Size)), Is.EqualTo(new[] { ("read", 1), ("read", 2), ("read", 4) }));
            Assert.That(m[Register.CL], Is.EqualTo(0xBE));
            Assert.That(m[Register.SI], Is.EqualTo(0xBABE));
            Assert.That(m[Register.EAX], Is.EqualTo(0xCAFE_BABE));
        });
    }

    [Test]
    public void InsAndOutsMoveBetweenMemoryAndThePort([Values(32, 64)] int bitness)
    {
        var device = new FakePortDevice("fake", 0x0000_7766);
        using var m = CpuTestMachine.With(bitness, a =>
        {
            a.rep.outsb();
            a.mov(ecx, 2);
            a.rep.insw();
            a.hlt();
        });
        m.Bus.RegisterPorts(FakePort, 2, device);
        m.WriteBytes(Source, [1, 2, 3]);
        m[Register.RSI] = Source;
        m[Register.RDI] = Destination;
        m[Register.RCX] = 3;
        m[Register.RDX] = FakePort;
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(device.Accesses.Take(3).Select(x => x.Value), Is.EqualTo(new uint[] { 1, 2, 3 }));
            Assert.That(device.Accesses.Skip(3).Select(x => (x.Kind, x.Size)), Is.EqualTo(new[] { ("read", 2), ("read", 2) }));
            Assert.That(m.ReadUInt32(Destination), Is.EqualTo(0x7766_7766));
            Assert.That(m[Register.RDI], Is.EqualTo(Destination + 4));
        });
    }
}
