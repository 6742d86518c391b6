using System.Buffers.Binary;
using System.Numerics;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// One vCPU's local APIC (xAPIC at 0xFEE00000 and x2APIC through MSRs 0x800–0x8FF), after the SDM volume 3 chapter 11:
/// ID, version, TPR/PPR, EOI, LDR/DFR, SVR, the 256-bit IRR/ISR/TMR, ESR (write-then-read), ICR (fixed, lowest
/// priority, NMI, INIT, start-up; shorthands), the LVT (timer, thermal, performance, LINT0, LINT1, error) and the timer
/// in one-shot, periodic and TSC-deadline modes.
/// </summary>
/// <remarks>
/// <para>Time is the vCPU's TSC (<see cref="Clock"/>, or the <c>now</c> argument): the timer's bus clock ticks once per
/// <see cref="TscTicksPerBusTick"/> TSC ticks, before the divide configuration. On the interpreter the TSC counts
/// retired instructions, so timer interrupts arrive at the same instruction on every run.</para>
/// <para>State is flat (bitmaps of four <c>ulong</c>, plain fields); accepting, acknowledging and ending an interrupt
/// allocate nothing. Thread-safe: any thread may post an interrupt (<see cref="AcceptFixed"/>, <see cref="AcceptNmi"/>, …);
/// after every change that can make an interrupt deliverable, <see cref="Kick"/> is called (under the APIC's lock).</para>
/// <para>Simplifications: a divide-configuration write applies from the next (re)load of the count; a write of the TSC
/// moves armed timers with it; remote read, APR and the thermal/performance/CMCI sources read 0 and never fire.</para>
/// </remarks>
public sealed class LocalApic : IMmioDevice
{
    /// <summary>The architectural default base address.</summary>
    public const ulong BaseAddress = 0xFEE00000;

    /// <summary>The size of the register page.</summary>
    public const ulong Size = 0x1000;

    /// <summary>The version register: version 0x14 (integrated APIC), max LVT entry 5 (six entries, no CMCI).</summary>
    public const uint VersionValue = 0x00050014;

    /// <summary>TSC ticks per APIC timer bus tick (before the divide configuration): the bus runs at the TSC's rate.</summary>
    public const long TscTicksPerBusTick = 1;

    /// <summary>ID register offset (xAPIC: id in bits 31:24).</summary>
    public const int IdRegister = 0x20;

    /// <summary>Version register offset.</summary>
    public const int VersionRegister = 0x30;

    /// <summary>Task priority register offset.</summary>
    public const int TprRegister = 0x80;

    /// <summary>Arbitration priority register offset (reads 0).</summary>
    public const int AprRegister = 0x90;

    /// <summary>Processor priority register offset (read-only).</summary>
    public const int PprRegister = 0xA0;

    /// <summary>End-of-interrupt register offset (write-only).</summary>
    public const int EoiRegister = 0xB0;

    /// <summary>Remote read register offset (reads 0).</summary>
    public const int RrdRegister = 0xC0;

    /// <summary>Logical destination register offset.</summary>
    public const int LdrRegister = 0xD0;

    /// <summary>Destination format register offset (xAPIC only).</summary>
    public const int DfrRegister = 0xE0;

    /// <summary>Spurious interrupt vector register offset.</summary>
    public const int SvrRegister = 0xF0;

    /// <summary>First of the eight in-service registers (0x100–0x170).</summary>
    public const int IsrRegister = 0x100;

    /// <summary>First of the eight trigger-mode registers (0x180–0x1F0).</summary>
    public const int TmrRegister = 0x180;

    /// <summary>First of the eight interrupt-request registers (0x200–0x270).</summary>
    public const int IrrRegister = 0x200;

    /// <summary>Error status register offset.</summary>
    public const int EsrRegister = 0x280;

    /// <summary>Interrupt command register, low half.</summary>
    public const int IcrLowRegister = 0x300;

    /// <summary>Interrupt command register, high half (xAPIC only).</summary>
    public const int IcrHighRegister = 0x310;

    /// <summary>LVT timer.</summary>
    public const int LvtTimerRegister = 0x320;

    /// <summary>LVT thermal sensor.</summary>
    public const int LvtThermalRegister = 0x330;

    /// <summary>LVT performance counters.</summary>
    public const int LvtPerfRegister = 0x340;

    /// <summary>LVT LINT0.</summary>
    public const int LvtLint0Register = 0x350;

    /// <summary>LVT LINT1.</summary>
    public const int LvtLint1Register = 0x360;

    /// <summary>LVT error.</summary>
    public const int LvtErrorRegister = 0x370;

    /// <summary>Timer initial count.</summary>
    public const int TimerInitialCountRegister = 0x380;

    /// <summary>Timer current count (read-only).</summary>
    public const int TimerCurrentCountRegister = 0x390;

    /// <summary>Timer divide configuration.</summary>
    public const int TimerDivideRegister = 0x3E0;

    /// <summary>Self-IPI (x2APIC only, write-only; MSR 0x83F).</summary>
    public const int SelfIpiRegister = 0x3F0;

    /// <summary>IA32_APIC_BASE bit 8: this is the bootstrap processor (read-only).</summary>
    public const ulong BaseBsp = 1UL << 8;

    /// <summary>IA32_APIC_BASE bit 10: x2APIC mode.</summary>
    public const ulong BaseExtd = 1UL << 10;

    /// <summary>IA32_APIC_BASE bit 11: the APIC is globally enabled.</summary>
    public const ulong BaseEnable = 1UL << 11;

    /// <summary>LVT bit 16: masked.</summary>
    public const uint LvtMasked = 1u << 16;

    /// <summary>ESR bit 5: send illegal vector.</summary>
    public const uint EsrSendIllegalVector = 1u << 5;

    /// <summary>ESR bit 6: receive illegal vector.</summary>
    public const uint EsrReceiveIllegalVector = 1u << 6;

    /// <summary>ESR bit 7: illegal register address.</summary>
    public const uint EsrIllegalRegister = 1u << 7;

    private const uint SvrEnable = 1u << 8;
    private const int LvtCount = 6;
    private const ulong BaseAddressMask = 0x0000_FFFF_FFFF_F000UL;

    private readonly Lock _lock = new();
    private readonly ulong[] _irr = new ulong[4];
    private readonly ulong[] _isr = new ulong[4];
    private readonly ulong[] _tmr = new ulong[4];
    private int _eoiBroadcast = -1;
    private readonly uint[] _lvt = new uint[LvtCount];

    private ulong _base;
    private uint _xapicId;
    private uint _tpr;
    private uint _ldr;
    private uint _dfr = 0xFFFF_FFFF;
    private uint _svr = 0xFF;
    private uint _esr;
    private uint _esrPending;
    private uint _icrLow;
    private uint _icrHigh;
    private uint _divide;
    private uint _initialCount;
    private long _timerDeadline = long.MaxValue;
    private long _timerPeriod;
    private ulong _tscDeadline;
    private bool _nmiPending;
    private long _kicks;

    private long _eoiCount;
    private long _accepted;
    private long _timerFirings;
    private long _ipisSent;

    /// <summary>Creates the APIC with id <paramref name="id"/>, globally enabled in xAPIC mode at <see cref="BaseAddress"/>.</summary>
    /// <param name="id">The APIC id, 0–255 (the xAPIC id field is 8 bits).</param>
    /// <param name="bootstrap">True for the bootstrap processor (IA32_APIC_BASE.BSP; running from reset). Others start in wait-for-SIPI.</param>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside 0–255.</exception>
    public LocalApic(int id, bool bootstrap)
    {
        if (id is < 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"APIC id {id} is invalid: xAPIC ids are 0 to 255");
        }

        Id = id;
        _xapicId = (uint)id << 24;
        _base = BaseAddress | BaseEnable | (bootstrap ? BaseBsp : 0);
        IsRunning = bootstrap;
        WaitingForStartup = !bootstrap;
        for (var n = 0; n < LvtCount; n++)
        {
            _lvt[n] = LvtMasked;
        }
    }

    /// <inheritdoc />
    public string Name => $"lapic{Id}";

    /// <summary>The APIC id (the vCPU's id).</summary>
    public int Id { get; }

    /// <summary>The router that carries this APIC's IPIs (set by <see cref="InterruptRouter"/>).</summary>
    public InterruptRouter? Router { get; internal set; }

    /// <summary>The TSC of the owning vCPU, for register accesses that do not pass the time; null reads time 0.</summary>
    public Func<long>? Clock { get; set; }

    /// <summary>Called (under the APIC's lock, on any thread) after every change that may make an interrupt deliverable or move the timer.</summary>
    public Action? Kick { get; set; }

    /// <summary>Incremented before every <see cref="Kick"/>: a reader that saw no change across a recomputation missed no kick.</summary>
    public long KickCount => Volatile.Read(ref _kicks);

    /// <summary>IA32_APIC_BASE.</summary>
    public ulong BaseMsr
    {
        get { lock (_lock) { return _base; } }
    }

    /// <summary>The guest-physical address of the register page (IA32_APIC_BASE bits 51:12).</summary>
    public ulong PageAddress => BaseMsr & BaseAddressMask;

    /// <summary>True while the APIC is globally enabled in xAPIC mode: its page answers MMIO.</summary>
    public bool IsXapicMode => (BaseMsr & (BaseEnable | BaseExtd)) == BaseEnable;

    /// <summary>True in x2APIC mode: MSRs 0x800–0x8FF answer, the MMIO page does not.</summary>
    public bool IsX2ApicMode => (BaseMsr & (BaseEnable | BaseExtd)) == (BaseEnable | BaseExtd);

    /// <summary>True when SVR bit 8 (APIC software enable) is set.</summary>
    public bool IsSoftwareEnabled
    {
        get { lock (_lock) { return (_svr & SvrEnable) != 0; } }
    }

    /// <summary>TPR (bits 7:0).</summary>
    public byte Tpr
    {
        get { lock (_lock) { return (byte)_tpr; } }
        set { lock (_lock) { _tpr = value; KickLocked(); } }
    }

    /// <summary>PPR: TPR when its class is at least the highest in-service class, else that class.</summary>
    public byte Ppr
    {
        get { lock (_lock) { return (byte)PprLocked(); } }
    }

    /// <summary>True while an NMI is pending.</summary>
    public bool NmiPending
    {
        get { lock (_lock) { return _nmiPending; } }
    }

    /// <summary>The TSC at which the timer fires next, or <see cref="long.MaxValue"/> when it is not armed.</summary>
    public long TimerDeadline
    {
        get { lock (_lock) { return _timerDeadline; } }
    }

    /// <summary>IA32_TSC_DEADLINE (0 when disarmed or not in TSC-deadline mode).</summary>
    public ulong TscDeadline
    {
        get { lock (_lock) { return _tscDeadline; } }
    }

    /// <summary>True while the vCPU runs (the bootstrap processor, or an AP after its start-up IPI).</summary>
    public bool IsRunning { get; private set; }

    /// <summary>True while the processor waits for a start-up IPI (an AP from reset or after INIT).</summary>
    public bool WaitingForStartup { get; private set; }

    /// <summary>INIT messages accepted (by a processor not running).</summary>
    public int InitCount { get; private set; }

    /// <summary>Start-up IPIs accepted (by a processor waiting for one).</summary>
    public int StartupCount { get; private set; }

    /// <summary>The vector of the start-up IPI that started this processor (its code at vector × 4 KiB), or -1.</summary>
    public int StartupVector { get; private set; } = -1;

    /// <summary>EOI writes seen.</summary>
    public long EoiCount => Interlocked.Read(ref _eoiCount);

    /// <summary>Fixed interrupts accepted into the IRR.</summary>
    public long InterruptsAccepted => Interlocked.Read(ref _accepted);

    /// <summary>Timer expiries (masked ones included).</summary>
    public long TimerFirings => Interlocked.Read(ref _timerFirings);

    /// <summary>IPIs this APIC sent (ICR writes that sent a message).</summary>
    public long IpisSent => Interlocked.Read(ref _ipisSent);

    /// <summary>Registers the page at <see cref="BaseAddress"/> (for an accelerator whose vCPUs reach the APIC through the bus).</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterMmio(BaseAddress, Size, this);
    }

    /// <summary>Writes IA32_APIC_BASE; returns false (a #GP, nothing changed) for a reserved bit or an illegal mode transition.</summary>
    /// <param name="value">The value written.</param>
    /// <returns>True when the write is legal.</returns>
    public bool TryWriteBaseMsr(ulong value)
    {
        lock (_lock)
        {
            if ((value & ~(BaseAddressMask | BaseExtd | BaseEnable | BaseBsp)) != 0)
            {
                return false;
            }

            var enabled = (value & BaseEnable) != 0;
            var x2 = (value & BaseExtd) != 0;
            var wasX2 = (_base & (BaseEnable | BaseExtd)) == (BaseEnable | BaseExtd);
            var wasDisabled = (_base & BaseEnable) == 0;
            if ((x2 && !enabled) || (wasX2 && enabled && !x2) || (wasDisabled && x2))
            {
                return false;
            }

            _base = (value & ~BaseBsp) | (_base & BaseBsp);
            if (!enabled)
            {
                _svr &= ~SvrEnable;
                MaskAllLvtLocked();
                DisarmTimerLocked();
            }

            KickLocked();
            return true;
        }
    }

    /// <summary>The value a read of xAPIC register <paramref name="offset"/> returns, at time <see cref="Clock"/>.</summary>
    /// <param name="offset">A register offset (16-byte aligned).</param>
    /// <returns>The value (0 for reserved and write-only registers).</returns>
    public uint ReadRegister(int offset) => ReadRegister(offset, Clock?.Invoke() ?? 0);

    /// <summary>The value a read of xAPIC register <paramref name="offset"/> returns at TSC <paramref name="now"/>.</summary>
    /// <param name="offset">A register offset (16-byte aligned).</param>
    /// <param name="now">The vCPU's TSC.</param>
    /// <returns>The value (0 for reserved and write-only registers).</returns>
    public uint ReadRegister(int offset, long now)
    {
        lock (_lock)
        {
            return TryReadLocked(offset, now, x2: false, out var value) ? value : 0;
        }
    }

    /// <summary>Writes xAPIC register <paramref name="offset"/> at time <see cref="Clock"/>.</summary>
    /// <param name="offset">A register offset (16-byte aligned).</param>
    /// <param name="value">The value.</param>
    public void WriteRegister(int offset, uint value) => WriteRegister(offset, value, Clock?.Invoke() ?? 0);

    /// <summary>
    /// Writes xAPIC register <paramref name="offset"/> at TSC <paramref name="now"/>; writes to read-only and reserved
    /// registers are ignored, as the SDM says (an ICR low write sends the IPI).
    /// </summary>
    /// <param name="offset">A register offset (16-byte aligned).</param>
    /// <param name="value">The value.</param>
    /// <param name="now">The vCPU's TSC.</param>
    public void WriteRegister(int offset, uint value, long now)
    {
        ApicMessage? send;
        lock (_lock)
        {
            TryWriteLocked(offset, value, now, x2: false, out send);
        }

        if (send is { } message)
        {
            Send(message);
        }

        BroadcastPendingEoi();
    }

    /// <summary>
    /// RDMSR of an x2APIC register (MSR 0x800 + offset/16); false is a #GP: not in x2APIC mode, a reserved or
    /// write-only register.
    /// </summary>
    /// <param name="msr">The MSR, 0x800–0x8FF.</param>
    /// <param name="now">The vCPU's TSC.</param>
    /// <param name="value">The value read.</param>
    /// <returns>True when the read is legal.</returns>
    public bool TryReadMsr(uint msr, long now, out ulong value)
    {
        value = 0;
        lock (_lock)
        {
            if (!IsX2Locked() || msr is < 0x800 or > 0x8FF)
            {
                return false;
            }

            var offset = (int)(msr - 0x800) << 4;
            if (offset is EoiRegister or SelfIpiRegister or DfrRegister or IcrHighRegister or AprRegister or RrdRegister)
            {
                return false;
            }

            if (!TryReadLocked(offset, now, x2: true, out var low))
            {
                return false;
            }

            value = offset == IcrLowRegister ? ((ulong)_icrHigh << 32) | low : low;
            return true;
        }
    }

    /// <summary>
    /// WRMSR of an x2APIC register; false is a #GP: not in x2APIC mode, a reserved or read-only register, reserved
    /// bits set (EOI and ESR take 0 only, bits 63:32 must be 0 except in the ICR).
    /// </summary>
    /// <param name="msr">The MSR, 0x800–0x8FF.</param>
    /// <param name="value">The value.</param>
    /// <param name="now">The vCPU's TSC.</param>
    /// <returns>True when the write is legal.</returns>
    public bool TryWriteMsr(uint msr, ulong value, long now)
    {
        ApicMessage? send;
        lock (_lock)
        {
            if (!IsX2Locked() || msr is < 0x800 or > 0x8FF)
            {
                return false;
            }

            var offset = (int)(msr - 0x800) << 4;
            if (offset == IcrLowRegister)
            {
                _icrHigh = (uint)(value >> 32);
            }
            else if ((value >> 32) != 0)
            {
                return false;
            }

            var legal = offset switch
            {
                EoiRegister or EsrRegister => value == 0,
                TprRegister or SvrRegister or IcrLowRegister or LvtTimerRegister or LvtThermalRegister or LvtPerfRegister
                    or LvtLint0Register or LvtLint1Register or LvtErrorRegister or TimerInitialCountRegister or TimerDivideRegister
                    or SelfIpiRegister => true,
                _ => false,
            };
            if (!legal)
            {
                return false;
            }

            TryWriteLocked(offset, (uint)value, now, x2: true, out send);
        }

        if (send is { } message)
        {
            Send(message);
        }

        BroadcastPendingEoi();
        return true;
    }

    /// <summary>WRMSR IA32_TSC_DEADLINE: arms (nonzero) or disarms (0) the timer in TSC-deadline mode; ignored in the other modes.</summary>
    /// <param name="value">The TSC value at which to fire.</param>
    public void WriteTscDeadline(ulong value)
    {
        lock (_lock)
        {
            if (TimerModeLocked() != 2)
            {
                return;
            }

            _tscDeadline = value;
            _timerDeadline = value == 0 ? long.MaxValue : (long)Math.Min(value, long.MaxValue - 1);
            KickLocked();
        }
    }

    /// <summary>Fires the timer if its deadline is at or before <paramref name="now"/> (a periodic timer reloads and fires once however many periods passed).</summary>
    /// <param name="now">The vCPU's TSC.</param>
    public void AdvanceTime(long now)
    {
        lock (_lock)
        {
            AdvanceTimeLocked(now);
        }
    }

    /// <summary>
    /// The earliest TSC at which this APIC may need the vCPU's attention: <see cref="long.MinValue"/> when an NMI or a
    /// fixed interrupt above PPR is pending now, else the timer's deadline (<see cref="long.MaxValue"/> when none).
    /// Fires an expired timer first.
    /// </summary>
    /// <param name="now">The vCPU's TSC.</param>
    /// <returns>The TSC of the next event.</returns>
    public long NextEvent(long now)
    {
        lock (_lock)
        {
            AdvanceTimeLocked(now);
            return _nmiPending || HighestDeliverableLocked() >= 0 ? long.MinValue : _timerDeadline;
        }
    }

    /// <summary>True when a timer interrupt can still arrive: the timer is armed and its LVT entry is not masked.</summary>
    public bool TimerCanInterrupt
    {
        get { lock (_lock) { return _timerDeadline != long.MaxValue && (_lvt[0] & LvtMasked) == 0; } }
    }

    /// <summary>The highest pending vector whose class is above PPR's, or -1: what the CPU would take with IF set.</summary>
    public int HighestDeliverable
    {
        get { lock (_lock) { return HighestDeliverableLocked(); } }
    }

    /// <summary>Takes the pending NMI, if any (the CPU delivers it through vector 2).</summary>
    /// <returns>True when an NMI was pending.</returns>
    public bool TakeNmi()
    {
        lock (_lock)
        {
            var pending = _nmiPending;
            _nmiPending = false;
            return pending;
        }
    }

    /// <summary>The interrupt acknowledge: moves the highest deliverable IRR vector to the ISR and returns it, or -1.</summary>
    /// <returns>The vector the CPU must deliver, or -1.</returns>
    public int Acknowledge()
    {
        lock (_lock)
        {
            var vector = HighestDeliverableLocked();
            if (vector >= 0)
            {
                Clear(_irr, vector);
                Set(_isr, vector);
            }

            return vector;
        }
    }

    /// <summary>Accepts a fixed interrupt into the IRR (dropped while the APIC is disabled; vectors 0–15 set ESR bit 6 instead).</summary>
    /// <param name="vector">The vector.</param>
    /// <param name="levelTriggered">Sets the vector's TMR bit: its EOI is then broadcast to the router's I/O APIC.</param>
    /// <returns>True when the vector was set in the IRR.</returns>
    public bool AcceptFixed(int vector, bool levelTriggered = false)
    {
        lock (_lock)
        {
            return AcceptFixedLocked(vector, levelTriggered);
        }
    }

    /// <summary>Makes an NMI pending (accepted even while software-disabled).</summary>
    public void AcceptNmi()
    {
        lock (_lock)
        {
            if ((_base & BaseEnable) == 0)
            {
                return;
            }

            _nmiPending = true;
            KickLocked();
        }
    }

    /// <summary>INIT: a processor not running enters wait-for-SIPI; returns false (ignored) for a running one.</summary>
    /// <returns>True when accepted.</returns>
    public bool AcceptInit()
    {
        lock (_lock)
        {
            if (IsRunning)
            {
                return false;
            }

            InitCount++;
            WaitingForStartup = true;
            KickLocked();
            return true;
        }
    }

    /// <summary>Start-up IPI: a processor waiting for one records <paramref name="vector"/> and counts as started; ignored (false) otherwise.</summary>
    /// <param name="vector">The start page (code at vector × 4 KiB).</param>
    /// <returns>True when accepted.</returns>
    public bool AcceptStartup(int vector)
    {
        lock (_lock)
        {
            if (IsRunning || !WaitingForStartup)
            {
                return false;
            }

            StartupCount++;
            StartupVector = vector & 0xFF;
            WaitingForStartup = false;
            IsRunning = true;
            KickLocked();
            return true;
        }
    }

    /// <summary>A signal on LINT0 or LINT1: delivered as its LVT entry says (fixed or NMI) unless masked.</summary>
    /// <param name="pin">0 or 1.</param>
    /// <returns>True when an interrupt was made pending.</returns>
    public bool RaiseLint(int pin)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(pin is 0 or 1, true, nameof(pin));
        lock (_lock)
        {
            var entry = _lvt[3 + pin];
            if ((entry & LvtMasked) != 0)
            {
                return false;
            }

            switch ((ApicDeliveryMode)((entry >> 8) & 7))
            {
                case ApicDeliveryMode.Fixed:
                    return AcceptFixedLocked((int)(entry & 0xFF), (entry & (1u << 15)) != 0);
                case ApicDeliveryMode.Nmi:
                    _nmiPending = true;
                    KickLocked();
                    return true;
                default:
                    return false;
            }
        }
    }

    /// <summary>True when <paramref name="vector"/>'s bit is set in the IRR.</summary>
    /// <param name="vector">A vector.</param>
    public bool IsRequested(int vector)
    {
        lock (_lock) { return Test(_irr, vector); }
    }

    /// <summary>True when <paramref name="vector"/>'s bit is set in the ISR.</summary>
    /// <param name="vector">A vector.</param>
    public bool IsInService(int vector)
    {
        lock (_lock) { return Test(_isr, vector); }
    }

    /// <summary>True when this APIC matches logical destination <paramref name="destination"/> (flat or cluster model in xAPIC mode, cluster in x2APIC).</summary>
    /// <param name="destination">The message's destination field.</param>
    /// <param name="x2">True when the sender is in x2APIC mode (32-bit destinations).</param>
    public bool MatchesLogical(uint destination, bool x2)
    {
        lock (_lock)
        {
            if (x2)
            {
                var ldr = X2LdrLocked();
                return destination == 0xFFFF_FFFF || ((destination >> 16) == (ldr >> 16) && (destination & ldr & 0xFFFF) != 0);
            }

            var logical = _ldr >> 24;
            var dest = destination & 0xFF;
            if (dest == 0xFF)
            {
                return true;
            }

            return (_dfr >> 28) == 0xF
                ? (logical & dest) != 0
                : (logical >> 4) == (dest >> 4) && (logical & dest & 0xF) != 0;
        }
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        Span<byte> slot = stackalloc byte[16];
        var i = 0;
        while (i < data.Length)
        {
            var at = offset + (ulong)i;
            var register = (int)(at & ~0xFUL);
            slot.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(slot, ReadRegister(register));
            var within = (int)(at & 0xF);
            var n = Math.Min(16 - within, data.Length - i);
            slot.Slice(within, n).CopyTo(data[i..]);
            i += n;
        }
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        Span<byte> dword = stackalloc byte[4];
        var i = 0;
        while (i < data.Length)
        {
            var at = offset + (ulong)i;
            var register = (int)(at & ~0xFUL);
            var within = (int)(at & 0xF);
            var n = Math.Min(16 - within, data.Length - i);
            if (within < 4)
            {
                var bytes = Math.Min(n, 4 - within);
                if (bytes == 4)
                {
                    WriteRegister(register, BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i, 4)));
                }
                else
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(dword, ReadRegister(register));
                    data.Slice(i, bytes).CopyTo(dword[within..]);
                    WriteRegister(register, BinaryPrimitives.ReadUInt32LittleEndian(dword));
                }
            }

            i += n;
        }
    }

    private void Send(in ApicMessage message)
    {
        Interlocked.Increment(ref _ipisSent);
        if (Router is { } router)
        {
            router.Deliver(this, message);
        }
        else if (message.Shorthand is ApicShorthand.Self or ApicShorthand.AllIncludingSelf
                 || (message.Shorthand == ApicShorthand.None && !message.Logical && message.Destination == (uint)Id))
        {
            InterruptRouter.DeliverTo(this, message);
        }
    }

    private bool IsX2Locked() => (_base & (BaseEnable | BaseExtd)) == (BaseEnable | BaseExtd);

    private uint X2LdrLocked() => ((uint)(Id & 0xFFFF0) << 12) | (1u << (Id & 0xF));

    private int TimerModeLocked() => (int)((_lvt[0] >> 17) & 3);

    private uint PprLocked()
    {
        var isrv = Highest(_isr);
        var isrClass = isrv < 0 ? 0u : (uint)isrv & 0xF0;
        return (_tpr & 0xF0) >= isrClass ? _tpr & 0xFF : isrClass;
    }

    private int HighestDeliverableLocked()
    {
        var irrv = Highest(_irr);
        return irrv >= 0 && (irrv & 0xF0) > (PprLocked() & 0xF0) ? irrv : -1;
    }

    private bool AcceptFixedLocked(int vector, bool levelTriggered)
    {
        if ((_base & BaseEnable) == 0 || (_svr & SvrEnable) == 0)
        {
            return false;
        }

        if (vector < 16)
        {
            RaiseErrorLocked(EsrReceiveIllegalVector);
            return false;
        }

        Set(_irr, vector);
        if (levelTriggered) { Set(_tmr, vector); }
        else { Clear(_tmr, vector); }
        Interlocked.Increment(ref _accepted);
        KickLocked();
        return true;
    }

    private void RaiseErrorLocked(uint bit)
    {
        if ((_esrPending & bit) != 0)
        {
            return;
        }

        _esrPending |= bit;
        var entry = _lvt[5];
        if ((entry & LvtMasked) == 0)
        {
            AcceptFixedLocked((int)(entry & 0xFF), levelTriggered: false);
        }
    }

    /// <summary>Passes the EOI of a level-triggered interrupt to the router's I/O APIC (outside this APIC's lock).</summary>
    private void BroadcastPendingEoi()
    {
        if (Volatile.Read(ref _eoiBroadcast) < 0)
        {
            return; // the common case: no level-triggered EOI, no lock taken
        }

        int vector;
        lock (_lock)
        {
            vector = _eoiBroadcast;
            _eoiBroadcast = -1;
        }

        if (vector >= 0)
        {
            Router?.IoApic?.EndOfInterrupt((byte)vector);
        }
    }

    private void KickLocked()
    {
        Interlocked.Increment(ref _kicks);
        Kick?.Invoke();
    }

    private void MaskAllLvtLocked()
    {
        for (var n = 0; n < LvtCount; n++)
        {
            _lvt[n] |= LvtMasked;
        }
    }

    private void DisarmTimerLocked()
    {
        _timerDeadline = long.MaxValue;
        _timerPeriod = 0;
        _initialCount = 0;
        _tscDeadline = 0;
    }

    private long DivisorLocked()
    {
        var code = ((_divide & 8) >> 1) | (_divide & 3);
        return code == 7 ? 1 : 2L << (int)code;
    }

    private void AdvanceTimeLocked(long now)
    {
        if (_timerDeadline > now)
        {
            return;
        }

        Interlocked.Increment(ref _timerFirings);
        switch (TimerModeLocked())
        {
            case 1 when _timerPeriod > 0:
                _timerDeadline += ((now - _timerDeadline) / _timerPeriod + 1) * _timerPeriod;
                break;
            case 2:
                _tscDeadline = 0;
                _timerDeadline = long.MaxValue;
                break;
            default:
                _timerDeadline = long.MaxValue;
                break;
        }

        var entry = _lvt[0];
        if ((entry & LvtMasked) == 0)
        {
            AcceptFixedLocked((int)(entry & 0xFF), levelTriggered: false);
        }
        else
        {
            KickLocked();
        }
    }

    private uint CurrentCountLocked(long now)
    {
        if (TimerModeLocked() == 2 || _timerDeadline == long.MaxValue || _initialCount == 0)
        {
            return 0;
        }

        var remaining = Math.Max(0, _timerDeadline - now);
        var tick = DivisorLocked() * TscTicksPerBusTick;
        return (uint)Math.Min(_initialCount, (remaining + tick - 1) / tick);
    }

    private bool TryReadLocked(int offset, long now, bool x2, out uint value)
    {
        value = 0;
        switch (offset)
        {
            case IdRegister: value = x2 ? (uint)Id : _xapicId; return true;
            case VersionRegister: value = VersionValue; return true;
            case TprRegister: value = _tpr; return true;
            case AprRegister or RrdRegister: return true;
            case PprRegister: value = PprLocked(); return true;
            case EoiRegister: return true;
            case LdrRegister: value = x2 ? X2LdrLocked() : _ldr; return true;
            case DfrRegister: value = _dfr; return true;
            case SvrRegister: value = _svr; return true;
            case >= IsrRegister and < TmrRegister: value = Word(_isr, (offset - IsrRegister) >> 4); return true;
            case >= TmrRegister and < IrrRegister: value = Word(_tmr, (offset - TmrRegister) >> 4); return true;
            case >= IrrRegister and < EsrRegister: value = Word(_irr, (offset - IrrRegister) >> 4); return true;
            case EsrRegister: value = _esr; return true;
            case IcrLowRegister: value = _icrLow; return true;
            case IcrHighRegister: value = _icrHigh; return true;
            case >= LvtTimerRegister and <= LvtErrorRegister: value = _lvt[(offset - LvtTimerRegister) >> 4]; return true;
            case TimerInitialCountRegister: value = _initialCount; return true;
            case TimerCurrentCountRegister: AdvanceTimeLocked(now); value = CurrentCountLocked(now); return true;
            case TimerDivideRegister: value = _divide; return true;
            default: return false;
        }
    }

    private void TryWriteLocked(int offset, uint value, long now, bool x2, out ApicMessage? send)
    {
        send = null;
        switch (offset)
        {
            case IdRegister when !x2:
                _xapicId = value & 0xFF00_0000;
                return;
            case TprRegister:
                _tpr = value & 0xFF;
                KickLocked();
                return;
            case EoiRegister:
            {
                Interlocked.Increment(ref _eoiCount);
                var vector = Highest(_isr);
                if (vector >= 0)
                {
                    Clear(_isr, vector);
                    if (IsSet(_tmr, vector))
                    {
                        // A level-triggered interrupt: the EOI is broadcast to the I/O APIC after the lock is released.
                        Clear(_tmr, vector);
                        _eoiBroadcast = vector;
                    }

                    KickLocked();
                }

                return;
            }

            case LdrRegister when !x2:
                _ldr = value & 0xFF00_0000;
                return;
            case DfrRegister when !x2:
                _dfr = value | 0x0FFF_FFFF;
                return;
            case SvrRegister:
                _svr = value & 0x1FF;
                if ((_svr & SvrEnable) == 0)
                {
                    MaskAllLvtLocked();
                }

                KickLocked();
                return;
            case EsrRegister:
                _esr = _esrPending;
                _esrPending = 0;
                return;
            case IcrLowRegister:
            {
                _icrLow = value & 0x000C_CFFF;
                var message = ApicMessage.FromIcr(_icrLow, x2 ? _icrHigh : _icrHigh >> 24);
                if (message.Mode is ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority && message.Vector < 16)
                {
                    RaiseErrorLocked(EsrSendIllegalVector);
                    return;
                }

                send = message;
                return;
            }

            case IcrHighRegister when !x2:
                _icrHigh = value & 0xFF00_0000;
                return;
            case LvtTimerRegister:
            {
                var mode = (value >> 17) & 3;
                if (mode == 3)
                {
                    mode = 0;
                }

                var entry = (value & (0xFF | LvtMasked)) | (mode << 17);
                if (mode != (uint)TimerModeLocked())
                {
                    DisarmTimerLocked();
                }

                _lvt[0] = MaskedIfDisabled(entry);
                KickLocked();
                return;
            }

            case LvtThermalRegister or LvtPerfRegister:
                _lvt[(offset - LvtTimerRegister) >> 4] = MaskedIfDisabled(value & (0xFF | (7u << 8) | LvtMasked));
                return;
            case LvtLint0Register or LvtLint1Register:
                _lvt[(offset - LvtTimerRegister) >> 4] = MaskedIfDisabled(value & (0xFF | (7u << 8) | (1u << 13) | (1u << 15) | LvtMasked));
                return;
            case LvtErrorRegister:
                _lvt[5] = MaskedIfDisabled(value & (0xFF | LvtMasked));
                return;
            case TimerInitialCountRegister:
                if (TimerModeLocked() == 2)
                {
                    return;
                }

                _initialCount = value;
                if (value == 0)
                {
                    _timerDeadline = long.MaxValue;
                    _timerPeriod = 0;
                }
                else
                {
                    _timerPeriod = value * DivisorLocked() * TscTicksPerBusTick;
                    _timerDeadline = now + _timerPeriod;
                }

                KickLocked();
                return;
            case TimerDivideRegister:
                _divide = value & 0xB;
                return;
            case SelfIpiRegister when x2:
                AcceptFixedLocked((int)(value & 0xFF), levelTriggered: false);
                return;
            default:
                return;
        }
    }

    private uint MaskedIfDisabled(uint entry) => (_svr & SvrEnable) == 0 ? entry | LvtMasked : entry;

    private static uint Word(ulong[] bits, int index) => (uint)(bits[index >> 1] >> ((index & 1) * 32));

    private static void Set(ulong[] bits, int vector) => bits[vector >> 6] |= 1UL << (vector & 63);

    private static void Clear(ulong[] bits, int vector) => bits[vector >> 6] &= ~(1UL << (vector & 63));

    private static bool IsSet(ulong[] bits, int vector) => (bits[vector >> 6] & (1UL << (vector & 63))) != 0;

    private static bool Test(ulong[] bits, int vector) => (bits[vector >> 6] & (1UL << (vector & 63))) != 0;

    private static int Highest(ulong[] bits)
    {
        for (var n = 3; n >= 0; n--)
        {
            if (bits[n] != 0)
            {
                return (n << 6) + 63 - BitOperations.LeadingZeroCount(bits[n]);
            }
        }

        return -1;
    }
}
