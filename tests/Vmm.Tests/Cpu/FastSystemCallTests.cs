using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>SYSCALL/SYSRET, SYSENTER/SYSEXIT, STAC/CLAC under SMAP, CLFLUSH's fault checks and the no-op fences and hints.</summary>
public sealed class FastSystemCallTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    /// <summary>Marks the long-mode identity map's first 4 MiB user-accessible (U/S in the PML4E, PDPTE and both PDEs).</summary>
    private static void MakeLowMemoryUser(CpuTestMachine m, bool firstTwoMiB = true)
    {
        m.WriteUInt64(LongModeBoot.Pml4Address, m.ReadUInt64(LongModeBoot.Pml4Address) | 4);
        m.WriteUInt64(LongModeBoot.PdptAddress, m.ReadUInt64(LongModeBoot.PdptAddress) | 4);
        if (firstTwoMiB)
        {
            m.WriteUInt64(LongModeBoot.PdAddress, m.ReadUInt64(LongModeBoot.PdAddress) | 4);
        }

        m.WriteUInt64(LongModeBoot.PdAddress + 8, m.ReadUInt64(LongModeBoot.PdAddress + 8) | 4);
    }

    private static void Wrmsr(Assembler a, uint msr, ulong value)
    {
        a.mov(ecx, msr);
        a.mov(eax, (uint)value);
        a.mov(edx, (uint)(value >> 32));
        a.wrmsr();
    }

    [Test]
    public void SyscallAndSysretRoundTripThroughCpl3()
    {
        Label user = default, handler = default, afterSyscall = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            user = a.CreateLabel();
            handler = a.CreateLabel();
            afterSyscall = a.CreateLabel();
            Wrmsr(a, X86Cpu.MsrEfer, 0x501);
            Wrmsr(a, X86Cpu.MsrStar, (0x18UL << 48) | (0x08UL << 32));
            a.lea(rax, __[handler]);
            a.mov(rdx, rax);
            a.shr(rdx, 32);
            a.mov(ecx, X86Cpu.MsrLstar);
            a.wrmsr();
            Wrmsr(a, X86Cpu.MsrSfmask, 0x400);
            a.lea(rcx, __[user]);
            a.mov(r11d, 0x202);
            a.sysretq();
            a.Label(ref user);
            a.mov(r12, cs);
            a.mov(r9, ss);
            a.std();
            a.syscall();
            a.Label(ref afterSyscall);
            a.hlt();
            a.Label(ref handler);
            a.mov(r13, cs);
            a.mov(r10, ss);
            a.mov(r14, rcx);
            a.mov(r15, r11);
            a.pushfq();
            a.pop(rbp);
            a.hlt();
        });
        MakeLowMemoryUser(m);
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.R12], Is.EqualTo(0x2B), "SYSRET64: CS = STAR[63:48] + 16, RPL 3");
            Assert.That(m[Register.R9], Is.EqualTo(0x23), "SS = STAR[63:48] + 8, RPL 3");
            Assert.That(m[Register.R13], Is.EqualTo(0x08), "SYSCALL: CS = STAR[47:32]");
            Assert.That(m[Register.R10], Is.EqualTo(0x10), "SS = STAR[47:32] + 8");
            Assert.That(m[Register.R14], Is.EqualTo(m.AddressOf(afterSyscall)), "RCX = the return RIP");
            Assert.That(m[Register.R15] & 0x600, Is.EqualTo(0x600), "R11 = RFLAGS before (IF and DF set)");
            Assert.That(m[Register.RBP] & 0x400, Is.EqualTo(0), "SFMASK cleared DF");
            Assert.That(m.Cpu.Cpl, Is.EqualTo(0));
        });
    }

    [Test]
    public void SyscallIsUndefinedWithoutEferSceAndSysretToANonCanonicalRcxIsGp()
    {
        Label ud = default, gp = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            ud = a.CreateLabel();
            gp = a.CreateLabel();
            a.syscall();
            a.hlt();
            a.Label(ref ud);
            a.mov(esi, 6);
            Wrmsr(a, X86Cpu.MsrEfer, 0x501);
            a.mov(rcx, 0x0000_8000_0000_0000);
            a.sysretq();
            a.hlt();
            a.Label(ref gp);
            a.mov(edi, 13);
            a.hlt();
        });
        m.SetGate(6, m.AddressOf(ud));
        m.SetGate(13, m.AddressOf(gp));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(6));
            Assert.That(m[Register.EDI], Is.EqualTo(13));
        });
    }

    [Test]
    public void SysenterAndSysexitSwitchPrivilegeInProtectedMode()
    {
        Label user = default, handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            user = a.CreateLabel();
            handler = a.CreateLabel();
            Wrmsr(a, X86Cpu.MsrSysenterCs, 0x08);
            Wrmsr(a, X86Cpu.MsrSysenterEsp, 0x7_0000);
            a.mov(eax, __dword_ptr[Data]);
            a.xor(edx, edx);
            a.mov(ecx, X86Cpu.MsrSysenterEip);
            a.wrmsr();
            a.mov(edx, __dword_ptr[Data + 4]);
            a.mov(ecx, 0x6_0000);
            a.sysexit();
            a.Label(ref user);
            a.mov(esi, cs);
            a.mov(ebx, esp);
            a.sti();
            a.sysenter();
            a.Label(ref handler);
            a.mov(edi, cs);
            a.mov(ebp, esp);
            a.pushfd();
            a.pop(eax);
            a.hlt();
        });
        m.WriteUInt32(Data, (uint)m.AddressOf(handler));
        m.WriteUInt32(Data + 4, (uint)m.AddressOf(user));
        m.Rflags = 2 | (3UL << 12); // IOPL 3, so the user code may STI
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0x1B), "SYSEXIT: CS = SYSENTER_CS + 16, RPL 3");
            Assert.That(m[Register.EBX], Is.EqualTo(0x6_0000), "ESP = ECX");
            Assert.That(m[Register.EDI], Is.EqualTo(0x08));
            Assert.That(m[Register.EBP], Is.EqualTo(0x7_0000), "ESP = SYSENTER_ESP");
            Assert.That(m[Register.EAX] & 0x200, Is.EqualTo(0), "SYSENTER clears IF");
        });
    }

    [Test]
    public void SysenterWithANullSysenterCsIsGp([Values(32, 64)] int bitness)
    {
        Label gp = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            gp = a.CreateLabel();
            a.sysenter();
            a.hlt();
            a.Label(ref gp);
            a.mov(esi, 13);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(gp));
        m.RunToHalt();
        Assert.That(m[Register.ESI], Is.EqualTo(13));
    }

    [Test]
    public void StacAndClacGateSupervisorAccessToUserPagesUnderSmap()
    {
        Label pf = default, ud = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            pf = a.CreateLabel();
            ud = a.CreateLabel();
            a.mov(rax, cr4);
            a.or(eax, 1 << 21);
            a.mov(cr4, rax);
            a.mov(rbx, Data);
            a.stac();
            a.mov(__qword_ptr[rbx], 0x55);
            a.mov(r8, __qword_ptr[rbx]);
            a.clac();
            a.mov(r9, __qword_ptr[rbx]);
            a.hlt();
            a.Label(ref pf);
            a.mov(esi, 14);
            a.hlt();
            a.Label(ref ud);
            a.mov(edi, 6);
            a.hlt();
        });
        // Only 2–4 MiB (the data) is user memory: code, stack and IDT stay supervisor, so #PF delivery is not itself
        // an implicit supervisor access to a user page (which SMAP refuses whatever AC says).
        MakeLowMemoryUser(m, firstTwoMiB: false);
        m.SetGate(14, m.AddressOf(pf));
        m.SetGate(6, m.AddressOf(ud));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.R8], Is.EqualTo(0x55), "with AC set (STAC) the supervisor read of a user page succeeds");
            Assert.That(m[Register.R9], Is.EqualTo(0), "after CLAC it faults");
            Assert.That(m[Register.ESI], Is.EqualTo(14));
            Assert.That(m.Cpu.GetRflags() & X86Cpu.FlagAc, Is.EqualTo(0));
        });
    }

    [Test]
    public void ClflushFaultsLikeAByteReadAndTheHintsAreNoOps()
    {
        Label pf = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            pf = a.CreateLabel();
            a.mov(rbx, Data);
            a.clflush(__byte_ptr[rbx]);
            a.clflushopt(__byte_ptr[rbx + 64]);
            a.clwb(__byte_ptr[rbx + 128]);
            a.prefetcht0(__byte_ptr[rbx]);
            a.prefetchnta(__byte_ptr[0x4000_0000]);
            a.lfence();
            a.sfence();
            a.mfence();
            a.pause();
            a.mov(edi, 1);
            a.mov(rbx, 0x4000_0000); // beyond the 1 GiB identity map: not present
            a.clflush(__byte_ptr[rbx]);
            a.hlt();
            a.Label(ref pf);
            a.mov(esi, 14);
            a.hlt();
        });
        m.SetGate(14, m.AddressOf(pf));
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EDI], Is.EqualTo(1), "prefetch of an unmapped address does not fault");
            Assert.That(m[Register.ESI], Is.EqualTo(14));
            Assert.That(m.Cpu.Cr2, Is.EqualTo(0x4000_0000UL));
        });
    }
}
