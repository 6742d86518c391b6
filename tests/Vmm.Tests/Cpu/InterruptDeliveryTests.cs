using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using Hypervisor.Vmm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// External interrupts on the interpreter: the local APIC's page at 0xFEE00000 (32-bit flat mode, paging off) and its
/// MSRs (64-bit), delivery through the IDT at block boundaries, IF, the STI and MOV SS shadows, NMI, priority and EOI,
/// HLT woken by the timer on the virtual clock, and the halt that nothing can wake.
/// </summary>
public sealed class InterruptDeliveryTests
{
    private const uint Apic = 0xFEE00000;
    private const ulong Data = CpuTestMachine.DataAddress;

    private static void EnableApic(Assembler a) => a.mov(__dword_ptr[Apic + LocalApic.SvrRegister], 0x1FF);

    private static void SelfIpi(Assembler a, int vector, ApicDeliveryMode mode = ApicDeliveryMode.Fixed) =>
        a.mov(__dword_ptr[Apic + LocalApic.IcrLowRegister], (int)((1u << 18) | ((uint)mode << 8) | (uint)vector));

    private static void Eoi(Assembler a) => a.mov(__dword_ptr[Apic + LocalApic.EoiRegister], 0);

    [Test]
    public void HltWithInterruptsOffStopsTheVcpuAsHalted()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.cli();
            a.hlt();
        });

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted));
            Assert.That(exit.Detail, Does.Contain("interrupts disabled"));
        });
    }

    [Test]
    public void HltWithNothingPendingAndNoTimerStopsTheVcpuAsHalted()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            EnableApic(a);
            a.sti();
            a.hlt();
        });

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted));
            Assert.That(exit.Detail, Does.Contain("no interrupt pending or timer armed"));
        });
    }

    [Test]
    public void OneShotTimerWakesHltAndTheClockSkipsToItsDeadline()
    {
        Label handler = default, after = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            after = a.CreateLabel();
            EnableApic(a);
            a.mov(__dword_ptr[Apic + LocalApic.TimerDivideRegister], 0xB);
            a.mov(__dword_ptr[Apic + LocalApic.LvtTimerRegister], 0x40);
            a.mov(__dword_ptr[Apic + LocalApic.TimerInitialCountRegister], 1_000_000);
            a.sti();
            a.hlt();
            a.Label(ref after);
            a.cli();
            a.hlt();
            a.Label(ref handler);
            a.inc(__dword_ptr[Data]);
            a.mov(eax, __dword_ptr[esp]);
            a.mov(__dword_ptr[Data + 4], eax);
            Eoi(a);
            a.iretd();
        });
        m.SetGate(0x40, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(1), "one timer interrupt");
            Assert.That(m.ReadUInt32(Data + 4), Is.EqualTo((uint)m.AddressOf(after)), "the interrupt returns past the HLT");
            Assert.That(m.Cpu.Stats.InterruptsDelivered, Is.EqualTo(1));
            Assert.That(m.Cpu.Stats.HaltWakeups, Is.EqualTo(1));
            Assert.That(m.Cpu.Tsc, Is.GreaterThanOrEqualTo(1_000_000), "the TSC includes the time skipped in HLT");
            Assert.That(m.Cpu.Stats.HaltedTicks, Is.GreaterThan(999_000));
            Assert.That(m.Cpu.Apic.IsInService(0x40), Is.False, "EOI cleared it");
        });
    }

    [Test]
    public void PeriodicTimerInterruptsEveryPeriodWithHltBetween()
    {
        Label handler = default, loop = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            loop = a.CreateLabel();
            EnableApic(a);
            a.mov(__dword_ptr[Apic + LocalApic.TimerDivideRegister], 0x3);       // divide by 16
            a.mov(__dword_ptr[Apic + LocalApic.LvtTimerRegister], 0x2_0041);     // periodic
            a.mov(__dword_ptr[Apic + LocalApic.TimerInitialCountRegister], 10_000);
            a.rdtsc();
            a.mov(__dword_ptr[Data + 8], eax);
            a.sti();
            a.Label(ref loop);
            a.hlt();
            a.cmp(__dword_ptr[Data], 5);
            a.jb(loop);
            a.cli();
            a.rdtsc();
            a.mov(__dword_ptr[Data + 12], eax);
            a.hlt();
            a.Label(ref handler);
            a.inc(__dword_ptr[Data]);
            Eoi(a);
            a.iretd();
        });
        m.SetGate(0x41, m.AddressOf(handler));

        var exit = m.Run();
        var elapsed = m.ReadUInt32(Data + 12) - m.ReadUInt32(Data + 8);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(5));
            Assert.That(elapsed, Is.InRange(5 * 160_000u, (5 * 160_000u) + 1000), "five periods of 10,000 × 16 ticks");
            Assert.That(m.Cpu.Apic.TimerFirings, Is.EqualTo(5));
        });
    }

    [Test]
    public void InterruptsWaitWhileIfIsClearAndArriveAfterSti()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            EnableApic(a);
            a.cli();
            SelfIpi(a, 0x50);
            a.mov(ecx, 1);
            a.jmp(a.CreateLabel().Also(out var next));
            a.Label(ref next);
            a.mov(__dword_ptr[Data + 4], 1);
            a.sti();
            a.mov(ecx, 2);
            a.hlt();
            a.Label(ref handler);
            a.mov(__dword_ptr[Data], ecx);
            a.mov(edx, __dword_ptr[Data + 4]);
            Eoi(a);
            a.cli();
            a.hlt();
        });
        m.SetGate(0x50, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m[Register.EDX], Is.EqualTo(1), "not delivered while IF was clear");
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(2), "the STI shadow: the instruction after STI ran before the handler");
        });
    }

    [Test]
    public void MovSsHoldsOffAnInterruptForOneInstruction()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            EnableApic(a);
            a.sti();
            a.nop();
            SelfIpi(a, 0x51);
            a.mov(eax, ss);
            a.mov(ss, eax);
            a.mov(ebx, 7);
            a.hlt();
            a.Label(ref handler);
            a.mov(__dword_ptr[Data], ebx);
            a.cli();
            a.hlt();
        });
        m.SetGate(0x51, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(7), "the instruction after MOV SS ran before the handler");
        });
    }

    [Test]
    public void AnInterruptPendingAtABlockBoundaryIsTakenThere()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            EnableApic(a);
            a.sti();
            a.nop();
            SelfIpi(a, 0x52);
            a.jmp(a.CreateLabel().Also(out var next));
            a.Label(ref next);
            a.mov(ebx, 7);
            a.hlt();
            a.Label(ref handler);
            a.mov(__dword_ptr[Data], ebx);
            a.cli();
            a.hlt();
        });
        m.SetGate(0x52, m.AddressOf(handler));

        m.Run();

        Assert.That(m.ReadUInt32(Data), Is.Zero, "without a shadow the interrupt comes at the first boundary, before MOV EBX");
    }

    [Test]
    public void NmiIsDeliveredWithInterruptsOffAndBlocksAnotherUntilIret()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            EnableApic(a);
            a.cli();
            SelfIpi(a, 0, ApicDeliveryMode.Nmi);
            a.jmp(a.CreateLabel().Also(out var next));
            a.Label(ref next);
            a.mov(__dword_ptr[Data + 8], 1);
            a.hlt();
            a.Label(ref handler);
            a.inc(__dword_ptr[Data]);
            a.cmp(__dword_ptr[Data], 1);
            a.jne(a.CreateLabel().Also(out var done));
            SelfIpi(a, 0, ApicDeliveryMode.Nmi);
            a.jmp(a.CreateLabel().Also(out var boundary));
            a.Label(ref boundary);
            a.mov(eax, __dword_ptr[Data]);
            a.mov(__dword_ptr[Data + 4], eax);
            a.Label(ref done);
            a.iretd();
        });
        m.SetGate(2, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(2), "both NMIs were delivered, IF clear");
            Assert.That(m.ReadUInt32(Data + 4), Is.EqualTo(1), "the second NMI waited for the first handler's IRET");
            Assert.That(m.ReadUInt32(Data + 8), Is.EqualTo(1));
        });
    }

    [Test]
    public void AHigherClassNestsAndALowerClassWaitsForEoi()
    {
        Label low = default, high = default, lowest = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            low = a.CreateLabel();
            high = a.CreateLabel();
            lowest = a.CreateLabel();
            EnableApic(a);
            a.mov(edi, (int)Data);
            a.sti();
            SelfIpi(a, 0x40);
            a.jmp(a.CreateLabel().Also(out var next));
            a.Label(ref next);
            a.cli();
            a.hlt();

            // Each handler appends its vector, then (low) raises 0x30 and 0x80 and lets them in with STI.
            a.Label(ref low);
            a.mov(__dword_ptr[edi], 0x40);
            a.add(edi, 4);
            SelfIpi(a, 0x30);
            SelfIpi(a, 0x80);
            a.sti();
            a.nop();
            a.jmp(a.CreateLabel().Also(out var back));
            a.Label(ref back);
            a.mov(__dword_ptr[edi], 0x41);
            a.add(edi, 4);
            Eoi(a);
            a.iretd();
            a.Label(ref high);
            a.mov(__dword_ptr[edi], 0x80);
            a.add(edi, 4);
            Eoi(a);
            a.iretd();
            a.Label(ref lowest);
            a.mov(__dword_ptr[edi], 0x30);
            a.add(edi, 4);
            Eoi(a);
            a.iretd();
        });
        m.SetGate(0x40, m.AddressOf(low));
        m.SetGate(0x80, m.AddressOf(high));
        m.SetGate(0x30, m.AddressOf(lowest));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(Enumerable.Range(0, 4).Select(i => m.ReadUInt32(Data + (ulong)(i * 4))), Is.EqualTo(new uint[] { 0x40, 0x80, 0x41, 0x30 }),
                "0x80 (class 8) nests in 0x40's handler; 0x30 (class 3 < PPR 0x40) waits for 0x40's EOI");
            Assert.That(m.Cpu.Apic.EoiCount, Is.EqualTo(3));
            Assert.That(m.Cpu.Apic.Ppr, Is.Zero);
        });
    }

    [Test]
    public void Cr8IsTprBitsSevenToFourAndHoldsOffLowerClasses()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            a.mov(eax, 9);
            a.mov(cr8, rax);
            a.mov(rbx, cr8);
            a.sti();
            a.nop();
            a.jmp(a.CreateLabel().Also(out var next));
            a.Label(ref next);
            a.mov(esi, 1);                  // 0x90 is held: class 9 is not above TPR's 9
            a.xor(eax, eax);
            a.mov(cr8, rax);
            a.jmp(a.CreateLabel().Also(out var after));
            a.Label(ref after);
            a.mov(esi, 2);
            a.hlt();
            a.Label(ref handler);
            a.mov(__dword_ptr[Data], esi);
            a.cli();
            a.hlt();
        });
        m.SetGate(0x90, m.AddressOf(handler));
        m.Cpu.Apic.WriteRegister(LocalApic.SvrRegister, 0x1FF);
        m.Cpu.Apic.AcceptFixed(0x90);

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m[Register.RBX], Is.EqualTo(9));
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(1), "delivered once CR8 dropped, before MOV ESI, 2");
            Assert.That(m.Cpu.Apic.Tpr, Is.Zero);
        });
    }

    [Test]
    public void TscDeadlineTimerThroughX2ApicMsrsWakesHltAtOrAfterTheDeadline()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.or(eax, (int)LocalApic.BaseExtd);
            a.wrmsr();                      // x2APIC mode
            a.mov(ecx, 0x80F);
            a.mov(eax, 0x1FF);
            a.xor(edx, edx);
            a.wrmsr();                      // SVR
            a.mov(ecx, 0x832);
            a.mov(eax, 0x4_0060);
            a.wrmsr();                      // LVT timer: TSC-deadline, vector 0x60
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.add(rax, 50_000);
            a.mov(r12, rax);
            a.mov(rdx, rax);
            a.shr(rdx, 32);
            a.mov(ecx, 0x6E0);
            a.wrmsr();
            a.sti();
            a.hlt();
            a.cli();
            a.hlt();
            a.Label(ref handler);
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r13, rax);
            a.mov(ecx, 0x80B);
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.wrmsr();                      // EOI
            a.mov(ecx, 0x6E0);
            a.rdmsr();
            a.mov(r14, rax);
            a.iretq();
        });
        m.SetGate(0x60, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.Cpu.Stats.InterruptsDelivered, Is.EqualTo(1));
            Assert.That(m[Register.R13], Is.GreaterThanOrEqualTo(m[Register.R12]), "the handler runs at or after the deadline");
            Assert.That(m[Register.R13] - m[Register.R12], Is.LessThan(100));
            Assert.That(m[Register.R14], Is.Zero, "IA32_TSC_DEADLINE reads 0 once it fired");
        });
    }

    [Test]
    public void X2ApicMsrsRaiseGpInXapicModeAndApicBaseReadsBack()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.mov(r8, rax);
            a.mov(ecx, 0x802);
            a.rdmsr();
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0x0D);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(handler));

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.R8], Is.EqualTo(0xFEE00000UL | LocalApic.BaseEnable | LocalApic.BaseBsp));
            Assert.That(m[Register.ESI], Is.EqualTo(0x0D), "RDMSR 0x802 outside x2APIC mode is #GP");
        });
    }

    [Test]
    public void AnInterruptPostedFromAnotherThreadReachesARunningVcpu()
    {
        Label handler = default, loop = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            loop = a.CreateLabel();
            EnableApic(a);
            a.sti();
            a.Label(ref loop);
            a.cmp(__dword_ptr[Data], 0);
            a.je(loop);
            a.cli();
            a.hlt();
            a.Label(ref handler);
            a.mov(__dword_ptr[Data], 1);
            Eoi(a);
            a.iretd();
        });
        m.SetGate(0x70, m.AddressOf(handler));
        using var started = new ManualResetEventSlim();
        var poster = Task.Run(() =>
        {
            started.Wait();
            Thread.Sleep(20);
            m.Cpu.Apic.AcceptFixed(0x70);
        });

        started.Set();
        var exit = m.Run(2_000_000_000);
        poster.Wait();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(1), "the spinning vCPU took the interrupt another thread posted");
            Assert.That(m.Cpu.Stats.InterruptsDelivered, Is.EqualTo(1));
        });
    }

    [Test]
    public void CpuidReportsX2ApicAndTscDeadline()
    {
        var (_, _, ecx, _) = CpuidModel.Query(1, 0, 0);

        Assert.Multiple(() =>
        {
            Assert.That(ecx & (1u << 21), Is.Not.Zero, "x2APIC");
            Assert.That(ecx & (1u << 24), Is.Not.Zero, "TSC-deadline");
        });
    }

    [Test]
    public void ApicPageReadsAllOnesWhenTheApicIsGloballyDisabled()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, __dword_ptr[Apic + LocalApic.VersionRegister]);
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.and(eax, ~(int)LocalApic.BaseEnable);
            a.wrmsr();
            a.mov(ebx, __dword_ptr[Apic + LocalApic.VersionRegister]);
            a.hlt();
        });

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX] & 0xFFFFFFFF, Is.Not.EqualTo(0), "before: the version register");
            Assert.That(m[Register.EBX], Is.EqualTo(0xFFFFFFFF));
        });
    }
}
