using System.Buffers.Binary;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class LocalApicTests
{
    private LocalApic _apic = null!;
    private long _now;
    private int _kicks;

    [SetUp]
    public void SetUp()
    {
        _apic = new LocalApic(3, bootstrap: true);
        _now = 1000;
        _apic.Clock = () => _now;
        _apic.Kick = () => _kicks++;
        _kicks = 0;
    }

    private void Enable(int spurious = 0xFF) => _apic.WriteRegister(LocalApic.SvrRegister, 0x100u | (uint)spurious);

    [Test]
    public void ResetValues()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_apic.ReadRegister(LocalApic.IdRegister), Is.EqualTo(3u << 24));
            Assert.That(_apic.ReadRegister(LocalApic.VersionRegister), Is.EqualTo(0x00050014u));
            Assert.That(_apic.ReadRegister(LocalApic.SvrRegister), Is.EqualTo(0xFFu));
            Assert.That(_apic.ReadRegister(LocalApic.DfrRegister), Is.EqualTo(0xFFFFFFFFu));
            Assert.That(_apic.ReadRegister(LocalApic.LvtTimerRegister), Is.EqualTo(LocalApic.LvtMasked));
            Assert.That(_apic.ReadRegister(LocalApic.LvtLint0Register), Is.EqualTo(LocalApic.LvtMasked));
            Assert.That(_apic.ReadRegister(LocalApic.LvtErrorRegister), Is.EqualTo(LocalApic.LvtMasked));
            Assert.That(_apic.BaseMsr, Is.EqualTo(0xFEE00000UL | LocalApic.BaseEnable | LocalApic.BaseBsp));
            Assert.That(_apic.IsXapicMode, Is.True);
            Assert.That(_apic.IsSoftwareEnabled, Is.False);
        });
    }

    [TestCase(LocalApic.VersionRegister)]
    [TestCase(LocalApic.PprRegister)]
    [TestCase(LocalApic.IrrRegister)]
    [TestCase(LocalApic.IsrRegister + 0x70)]
    [TestCase(LocalApic.TmrRegister)]
    [TestCase(LocalApic.TimerCurrentCountRegister)]
    public void ReadOnlyRegistersIgnoreWrites(int offset)
    {
        var before = _apic.ReadRegister(offset);

        _apic.WriteRegister(offset, 0xFFFFFFFF);

        Assert.That(_apic.ReadRegister(offset), Is.EqualTo(before));
    }

    [Test]
    public void WritableRegistersKeepOnlyTheirDefinedBits()
    {
        _apic.WriteRegister(LocalApic.TprRegister, 0xFFFF_FF5A);
        _apic.WriteRegister(LocalApic.LdrRegister, 0x12345678);
        _apic.WriteRegister(LocalApic.DfrRegister, 0x0);
        _apic.WriteRegister(LocalApic.SvrRegister, 0xFFFF_FFFF);
        _apic.WriteRegister(LocalApic.IcrHighRegister, 0xFFFF_FFFF);
        _apic.WriteRegister(LocalApic.TimerDivideRegister, 0xFFFF_FFFF);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.ReadRegister(LocalApic.TprRegister), Is.EqualTo(0x5Au));
            Assert.That(_apic.ReadRegister(LocalApic.LdrRegister), Is.EqualTo(0x12000000u));
            Assert.That(_apic.ReadRegister(LocalApic.DfrRegister), Is.EqualTo(0x0FFFFFFFu));
            Assert.That(_apic.ReadRegister(LocalApic.SvrRegister), Is.EqualTo(0x1FFu));
            Assert.That(_apic.ReadRegister(LocalApic.IcrHighRegister), Is.EqualTo(0xFF000000u));
            Assert.That(_apic.ReadRegister(LocalApic.TimerDivideRegister), Is.EqualTo(0xBu));
        });
    }

    [Test]
    public void MmioReadsAndWritesRegistersAtSixteenByteStrides()
    {
        Span<byte> dword = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(dword, 0x40);
        _apic.Write(LocalApic.TprRegister, dword);
        Span<byte> slot = stackalloc byte[8];
        _apic.Read(LocalApic.TprRegister, slot);

        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(slot), Is.EqualTo(0x40UL), "bytes 4-7 of a register slot read 0");
    }

    [Test]
    public void SoftwareDisabledApicMasksLvtEntriesAndDropsFixedInterrupts()
    {
        _apic.WriteRegister(LocalApic.LvtLint0Register, 0x30);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.ReadRegister(LocalApic.LvtLint0Register), Is.EqualTo(0x30u | LocalApic.LvtMasked));
            Assert.That(_apic.AcceptFixed(0x40), Is.False);
            Assert.That(_apic.IsRequested(0x40), Is.False);
        });

        Enable();
        _apic.WriteRegister(LocalApic.LvtLint0Register, 0x30);
        Assert.That(_apic.ReadRegister(LocalApic.LvtLint0Register), Is.EqualTo(0x30u));
        _apic.WriteRegister(LocalApic.SvrRegister, 0xFF);
        Assert.That(_apic.ReadRegister(LocalApic.LvtLint0Register), Is.EqualTo(0x30u | LocalApic.LvtMasked), "clearing SVR.8 masks every LVT entry");
    }

    [Test]
    public void PprIsTprUnlessTheHighestInServiceClassIsHigher()
    {
        Enable();
        _apic.WriteRegister(LocalApic.TprRegister, 0x35);
        Assert.That(_apic.Ppr, Is.EqualTo(0x35));

        _apic.AcceptFixed(0x51);
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x51));
        Assert.That(_apic.ReadRegister(LocalApic.PprRegister), Is.EqualTo(0x50u));

        _apic.WriteRegister(LocalApic.TprRegister, 0x62);
        Assert.That(_apic.Ppr, Is.EqualTo(0x62));
    }

    [Test]
    public void OnlyVectorsOfAClassAbovePprAreDeliverable()
    {
        Enable();
        _apic.WriteRegister(LocalApic.TprRegister, 0x40);
        _apic.AcceptFixed(0x4F);
        Assert.That(_apic.HighestDeliverable, Is.EqualTo(-1), "same class as TPR: held");

        _apic.AcceptFixed(0x50);
        Assert.That(_apic.HighestDeliverable, Is.EqualTo(0x50));
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x50));
        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsInService(0x50), Is.True);
            Assert.That(_apic.IsRequested(0x50), Is.False);
            Assert.That(_apic.ReadRegister(LocalApic.IsrRegister + 0x20), Is.EqualTo(1u << 16), "ISR word 2 holds vectors 0x40-0x5F");
            Assert.That(_apic.ReadRegister(LocalApic.IrrRegister + 0x20), Is.EqualTo(1u << 15));
        });
    }

    [Test]
    public void EoiClearsTheHighestInServiceVectorOnly()
    {
        Enable();
        _apic.AcceptFixed(0x30);
        _apic.Acknowledge();
        _apic.AcceptFixed(0x80);
        _apic.Acknowledge();

        _apic.WriteRegister(LocalApic.EoiRegister, 0);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsInService(0x80), Is.False);
            Assert.That(_apic.IsInService(0x30), Is.True);
            Assert.That(_apic.Ppr, Is.EqualTo(0x30));
            Assert.That(_apic.EoiCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void AnIllegalVectorSetsEsrOnlyAfterTheNextEsrWrite()
    {
        Enable();
        _apic.WriteRegister(LocalApic.IcrLowRegister, 0x4_0005);   // self, fixed, vector 5
        _apic.AcceptFixed(3);

        Assert.That(_apic.ReadRegister(LocalApic.EsrRegister), Is.Zero, "ESR reads what the last ESR write latched");
        _apic.WriteRegister(LocalApic.EsrRegister, 0);
        Assert.That(_apic.ReadRegister(LocalApic.EsrRegister), Is.EqualTo(LocalApic.EsrSendIllegalVector | LocalApic.EsrReceiveIllegalVector));
        _apic.WriteRegister(LocalApic.EsrRegister, 0);
        Assert.That(_apic.ReadRegister(LocalApic.EsrRegister), Is.Zero);
    }

    [Test]
    public void AnErrorRaisesTheUnmaskedLvtErrorVector()
    {
        Enable();
        _apic.WriteRegister(LocalApic.LvtErrorRegister, 0xFE);

        _apic.AcceptFixed(7);

        Assert.That(_apic.IsRequested(0xFE), Is.True);
    }

    [TestCase(0x0u, 2)]
    [TestCase(0x1u, 4)]
    [TestCase(0x2u, 8)]
    [TestCase(0x3u, 16)]
    [TestCase(0x8u, 32)]
    [TestCase(0x9u, 64)]
    [TestCase(0xAu, 128)]
    [TestCase(0xBu, 1)]
    public void OneShotTimerCountsDownAtTheBusRateOverTheDivisor(uint divide, int divisor)
    {
        Enable();
        _apic.WriteRegister(LocalApic.TimerDivideRegister, divide);
        _apic.WriteRegister(LocalApic.LvtTimerRegister, 0x40);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 100);
        var period = 100L * divisor * LocalApic.TscTicksPerBusTick;

        Assert.That(_apic.TimerDeadline, Is.EqualTo(_now + period));
        _now += period / 2;
        Assert.That(_apic.ReadRegister(LocalApic.TimerCurrentCountRegister), Is.EqualTo(50u));
        _now += (period / 2) - 1;
        Assert.That(_apic.NextEvent(_now), Is.EqualTo(_now + 1), "not yet");
        Assert.That(_apic.IsRequested(0x40), Is.False);
        _now += 1;
        Assert.That(_apic.NextEvent(_now), Is.EqualTo(long.MinValue), "fired: vector 0x40 pending");
        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsRequested(0x40), Is.True);
            Assert.That(_apic.ReadRegister(LocalApic.TimerCurrentCountRegister), Is.Zero, "a one-shot timer stays at 0");
            Assert.That(_apic.TimerDeadline, Is.EqualTo(long.MaxValue));
            Assert.That(_apic.TimerFirings, Is.EqualTo(1));
        });
    }

    [Test]
    public void PeriodicTimerReloadsAndFiresOncePerPeriod()
    {
        Enable();
        _apic.WriteRegister(LocalApic.TimerDivideRegister, 0xB);
        _apic.WriteRegister(LocalApic.LvtTimerRegister, 0x2_0041);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 1000);
        var start = _now;

        _now = start + 1000;
        _apic.AdvanceTime(_now);
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x41));
        _apic.WriteRegister(LocalApic.EoiRegister, 0);
        Assert.That(_apic.TimerDeadline, Is.EqualTo(start + 2000));
        _now = start + 1250;
        Assert.That(_apic.ReadRegister(LocalApic.TimerCurrentCountRegister), Is.EqualTo(750u));

        _now = start + 4500;   // two and a half periods late: one interrupt (the IRR holds one), next deadline on the grid
        _apic.AdvanceTime(_now);
        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsRequested(0x41), Is.True);
            Assert.That(_apic.TimerDeadline, Is.EqualTo(start + 5000));
            Assert.That(_apic.TimerFirings, Is.EqualTo(2));
        });
    }

    [Test]
    public void MaskedTimerCountsButRaisesNothing()
    {
        Enable();
        _apic.WriteRegister(LocalApic.LvtTimerRegister, LocalApic.LvtMasked | 0x40);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 10);

        Assert.That(_apic.TimerCanInterrupt, Is.False);
        _now += 1000;
        _apic.AdvanceTime(_now);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.TimerFirings, Is.EqualTo(1));
            Assert.That(_apic.IsRequested(0x40), Is.False);
        });
    }

    [Test]
    public void TscDeadlineModeFiresAtTheDeadlineAndClearsTheMsr()
    {
        Enable();
        _apic.WriteTscDeadline(5000);
        Assert.That(_apic.TscDeadline, Is.Zero, "ignored outside TSC-deadline mode");

        _apic.WriteRegister(LocalApic.LvtTimerRegister, 0x4_0042);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 99);
        Assert.That(_apic.ReadRegister(LocalApic.TimerInitialCountRegister), Is.Zero, "the initial count is ignored in TSC-deadline mode");
        _apic.WriteTscDeadline(5000);
        Assert.That(_apic.TimerDeadline, Is.EqualTo(5000));

        _apic.AdvanceTime(4999);
        Assert.That(_apic.IsRequested(0x42), Is.False);
        _apic.AdvanceTime(5000);
        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsRequested(0x42), Is.True);
            Assert.That(_apic.TscDeadline, Is.Zero);
            Assert.That(_apic.TimerDeadline, Is.EqualTo(long.MaxValue));
        });
    }

    [Test]
    public void ChangingTheTimerModeDisarmsIt()
    {
        Enable();
        _apic.WriteRegister(LocalApic.LvtTimerRegister, 0x40);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 100);

        _apic.WriteRegister(LocalApic.LvtTimerRegister, 0x2_0040);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.TimerDeadline, Is.EqualTo(long.MaxValue));
            Assert.That(_apic.ReadRegister(LocalApic.TimerInitialCountRegister), Is.Zero);
        });
    }

    [Test]
    public void X2ApicMsrsAnswerOnlyInX2ApicMode()
    {
        Assert.That(_apic.TryReadMsr(0x802, _now, out _), Is.False, "xAPIC mode: #GP");
        Assert.That(_apic.TryWriteBaseMsr(_apic.BaseMsr | LocalApic.BaseExtd), Is.True);
        Assert.That(_apic.IsX2ApicMode, Is.True);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.TryReadMsr(0x802, _now, out var id) && id == 3, Is.True, "x2APIC id: the full id");
            Assert.That(_apic.TryReadMsr(0x80D, _now, out var ldr) && ldr == (1u << 3), Is.True, "LDR derived from the id");
            Assert.That(_apic.TryWriteMsr(0x80D, 0, _now), Is.False, "LDR is read-only in x2APIC mode");
            Assert.That(_apic.TryReadMsr(0x80B, _now, out _), Is.False, "EOI is write-only");
            Assert.That(_apic.TryWriteMsr(0x80B, 1, _now), Is.False, "EOI takes 0 only");
            Assert.That(_apic.TryWriteMsr(0x808, 0x20, _now) && _apic.Tpr == 0x20, Is.True);
            Assert.That(_apic.TryReadMsr(0x80E, _now, out _), Is.False, "no DFR in x2APIC mode");
            Assert.That(_apic.TryWriteMsr(0x808, 1UL << 32, _now), Is.False, "bits 63:32 are reserved");
        });
    }

    [Test]
    public void X2ApicSelfIpiAndIcrWrites()
    {
        _apic.TryWriteBaseMsr(_apic.BaseMsr | LocalApic.BaseExtd);
        _apic.TryWriteMsr(0x80F, 0x1FF, _now);

        Assert.That(_apic.TryWriteMsr(0x83F, 0x61, _now), Is.True);
        Assert.That(_apic.TryWriteMsr(0x830, (3UL << 32) | 0x62, _now), Is.True);

        Assert.Multiple(() =>
        {
            Assert.That(_apic.IsRequested(0x61), Is.True);
            Assert.That(_apic.IsRequested(0x62), Is.True, "physical destination 3 is this APIC");
            Assert.That(_apic.TryReadMsr(0x830, _now, out var icr) && icr == ((3UL << 32) | 0x62), Is.True);
        });
    }

    [Test]
    public void ApicBaseMsrTransitionsFollowTheSdm()
    {
        var enabled = _apic.BaseMsr;
        Assert.Multiple(() =>
        {
            Assert.That(_apic.TryWriteBaseMsr(enabled | (1UL << 9)), Is.False, "reserved bit 9");
            Assert.That(_apic.TryWriteBaseMsr((enabled & ~LocalApic.BaseEnable) | LocalApic.BaseExtd), Is.False, "EXTD without EN");
        });
        Assert.That(_apic.TryWriteBaseMsr(enabled | LocalApic.BaseExtd), Is.True);
        Assert.That(_apic.TryWriteBaseMsr(enabled), Is.False, "x2APIC to xAPIC directly");
        Assert.That(_apic.TryWriteBaseMsr(enabled & ~LocalApic.BaseEnable & ~LocalApic.BaseExtd), Is.True, "x2APIC to disabled");
        Assert.That(_apic.TryWriteBaseMsr((enabled & ~LocalApic.BaseEnable) | LocalApic.BaseEnable | LocalApic.BaseExtd), Is.False, "disabled to x2APIC");
        Assert.That(_apic.TryWriteBaseMsr(0xFED00000UL | LocalApic.BaseEnable), Is.True, "relocation");
        Assert.Multiple(() =>
        {
            Assert.That(_apic.PageAddress, Is.EqualTo(0xFED00000UL));
            Assert.That(_apic.BaseMsr & LocalApic.BaseBsp, Is.Not.Zero, "BSP is read-only");
        });
    }

    [Test]
    public void Lint1ProgrammedAsNmiMakesAnNmiPending()
    {
        Enable();
        _apic.WriteRegister(LocalApic.LvtLint1Register, 4u << 8);

        Assert.That(_apic.RaiseLint(1), Is.True);
        Assert.That(_apic.NmiPending, Is.True);
        Assert.That(_apic.TakeNmi(), Is.True);
        Assert.That(_apic.NmiPending, Is.False);
    }

    [Test]
    public void EveryChangeThatCanMakeAnInterruptDeliverableKicks()
    {
        Enable();
        var before = _kicks;
        _apic.AcceptFixed(0x40);
        _apic.WriteRegister(LocalApic.TprRegister, 0x10);
        _apic.Acknowledge();
        _apic.WriteRegister(LocalApic.EoiRegister, 0);
        _apic.WriteRegister(LocalApic.TimerInitialCountRegister, 5);

        Assert.That(_kicks - before, Is.EqualTo(4));
        Assert.That(_apic.KickCount, Is.GreaterThanOrEqualTo(_kicks));
    }
}
