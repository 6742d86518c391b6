using System.Runtime.CompilerServices;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The vCPU's local APIC and external-interrupt delivery: the APIC page (MMIO at IA32_APIC_BASE in xAPIC mode), the
/// APIC MSRs (IA32_APIC_BASE, IA32_TSC_DEADLINE, x2APIC 0x800–0x8FF), CR8, the virtual clock, HLT, and the check at
/// block boundaries that delivers a pending NMI or interrupt through the IDT.
/// </summary>
/// <remarks>
/// <para>Time: the TSC is <c>_instructions + _tscOffset</c> (one tick per retired instruction, counted at block
/// boundaries); a HLT that can be woken adds the ticks up to the next timer deadline to <c>_tscOffset</c> (and to
/// <c>_haltedTicks</c>). The APIC timer and IA32_TSC_DEADLINE run on that TSC, so runs are reproducible.</para>
/// <para>Invariant of <c>_eventAt</c>: whenever an NMI or an interrupt the CPU could take is pending, or the timer's
/// deadline has passed, <c>_instructions &gt;= _eventAt</c>; so the block loop's one compare is the whole check when
/// nothing is pending. Anything that may break it (the APIC's <see cref="LocalApic.Kick"/>, IF set, IRET ending NMI
/// blocking, an interrupt shadow) stores 0; only <see cref="ServiceEvents"/> raises it again.</para>
/// <para>Platform timers (the boot vCPU only, <see cref="PlatformTimers"/>): the PIT and RTC run on this vCPU's virtual
/// time, <c>_instructions + _haltedTicks</c> (the TSC less the guest's own writes to it), and their earliest deadline
/// is folded into <c>_eventAt</c>, so the invariant covers them too: a device whose deadline moves calls
/// <see cref="Devices.PlatformTimers.Changed"/>, which stores 0. A HLT with IF set skips to the earliest of the APIC
/// timer and the platform timers that can interrupt.</para>
/// <para>Interrupt shadow: STI (with IF clear), MOV SS and POP SS hold off every event until after the next block
/// boundary, so at least the following instruction executes first.</para>
/// </remarks>
public sealed partial class X86Cpu
{
    private const uint MsrTscDeadline = 0x6E0;

    private readonly LocalApic _apic;
    private long _eventAt;
    private bool _interruptShadow;
    private bool _nmiBlocked;
    private long _interruptsDelivered;
    private long _haltedTicks;
    private long _haltWakeups;
    private PlatformTimers? _platformTimers;

    /// <summary>This vCPU's local APIC.</summary>
    public LocalApic Apic => _apic;

    /// <summary>The TSC (retired instructions plus the TSC offset and the time skipped in HLT).</summary>
    public long Tsc => _instructions + _tscOffset;

    /// <summary>
    /// Virtual time in nanoseconds: retired instructions plus the time skipped in HLT (the TSC without the guest's
    /// writes to it, so it never runs backwards). The platform clock of the boot vCPU's <see cref="PlatformTimers"/>.
    /// </summary>
    public long VirtualTime => _instructions + _haltedTicks;

    /// <summary>
    /// The platform's timer devices this vCPU services (the boot vCPU's; null on the others). Setting it makes the
    /// timers' clock this vCPU's <see cref="VirtualTime"/> and their kick this vCPU's "look again". Set before running.
    /// </summary>
    public PlatformTimers? PlatformTimers
    {
        get => _platformTimers;
        set
        {
            _platformTimers = value;
            if (value is not null)
            {
                value.Clock = () => _instructions + _haltedTicks;
                value.Kick = () => Volatile.Write(ref _eventAt, 0);
            }

            _eventAt = 0;
        }
    }

    private void AttachApic()
    {
        _apic.Clock = () => _instructions + _tscOffset;
        _apic.Kick = () => Volatile.Write(ref _eventAt, 0);
        _eventAt = 0;
    }

    /// <summary>
    /// At a block boundary with <c>_instructions &gt;= _eventAt</c>: fires an expired timer, delivers a pending NMI
    /// (unless blocked by an earlier one until IRET) or, with IF set, the highest interrupt above PPR, and sets
    /// <c>_eventAt</c> to the next instruction count at which to look again.
    /// </summary>
    /// <returns>True when an event was delivered (RIP moved to its handler).</returns>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool ServiceEvents()
    {
        _currentIp = _rip;
        if (_interruptShadow)
        {
            _interruptShadow = false;
            Volatile.Write(ref _eventAt, 0);
            return false;
        }

        // Platform timers fire first, so an interrupt they raise is taken at this boundary.
        var platformNext = long.MaxValue;
        var generation = 0L;
        if (_platformTimers is { } timers)
        {
            generation = timers.Generation;
            platformNext = timers.Service(VirtualTime);
        }

        var kicks = _apic.KickCount;
        var now = Tsc;
        var next = _apic.NextEvent(now);
        if (next == long.MinValue)
        {
            if (!_nmiBlocked && _apic.TakeNmi())
            {
                _nmiBlocked = true;
                Volatile.Write(ref _eventAt, 0);
                DeliverExternal((byte)ExceptionVector.Nmi);
                return true;
            }

            if ((_rflags & FlagIf) != 0)
            {
                var vector = _apic.Acknowledge();
                if (vector >= 0)
                {
                    Volatile.Write(ref _eventAt, 0);
                    DeliverExternal((byte)vector);
                    return true;
                }
            }

            // Held off by IF or NMI blocking: setting IF and IRET store 0 again; until then only the timer matters.
            next = _apic.TimerDeadline;
        }

        var at = next == long.MaxValue || (_tscOffset < 0 && next > long.MaxValue + _tscOffset) ? long.MaxValue : next - _tscOffset;
        if (platformNext != long.MaxValue)
        {
            at = Math.Min(at, platformNext - _haltedTicks);
        }

        Volatile.Write(ref _eventAt, at);
        if (_apic.KickCount != kicks || (_platformTimers is { } changed && changed.Generation != generation))
        {
            Volatile.Write(ref _eventAt, 0);
        }

        return false;
    }

    private void DeliverExternal(byte vector)
    {
        _interruptsDelivered++;
        DeliverEvent(vector, null, _rip, software: false);
    }

    /// <summary>Holds off events until after the next block boundary (STI from IF clear, MOV SS, POP SS).</summary>
    private void BeginInterruptShadow()
    {
        _interruptShadow = true;
        _eventAt = 0;
    }

    /// <summary>
    /// HLT: when an event can wake the vCPU — an NMI or a deliverable interrupt pending, or (IF set) an armed, unmasked
    /// APIC timer or a platform timer that can interrupt — the clock skips to it and execution continues (the event is taken at the next block boundary, with
    /// the return address after HLT); otherwise the vCPU stops as halted.
    /// </summary>
    private void Halt()
    {
        var now = Tsc;
        var next = _apic.NextEvent(now);
        var interruptsOn = (_rflags & FlagIf) != 0;
        if ((_apic.NmiPending && !_nmiBlocked) || (interruptsOn && next == long.MinValue && _apic.HighestDeliverable >= 0))
        {
            _haltWakeups++;
            _eventAt = 0;
            return;
        }

        var platformWake = interruptsOn && _platformTimers is { } timers ? timers.NextWake(VirtualTime) : long.MaxValue;
        if (interruptsOn && (_apic.TimerCanInterrupt || platformWake != long.MaxValue))
        {
            var skip = _apic.TimerCanInterrupt ? Math.Max(0, _apic.TimerDeadline - now) : long.MaxValue;
            if (platformWake != long.MaxValue)
            {
                skip = Math.Min(skip, Math.Max(0, platformWake - VirtualTime));
            }

            if (PeersRunning is { } peers && skip > 0 && peers())
            {
                // Another vCPU runs: sleep until its clock passes the deadline (or an interrupt comes) rather than
                // skipping ahead of it.
                TimedHaltDeadline = skip == long.MaxValue ? long.MaxValue : now + skip;
                _pendingExit = new CpuExit(CpuExitReason.Halted, $"HLT at RIP 0x{_currentIp:x} until the TSC reaches {TimedHaltDeadline}");
                return;
            }

            _tscOffset += skip;
            _haltedTicks += skip;
            _haltWakeups++;
            _eventAt = 0;
            return;
        }

        TimedHaltDeadline = null;
        _pendingExit = new CpuExit(
            CpuExitReason.Halted,
            interruptsOn
                ? $"HLT at RIP 0x{_currentIp:x} with no interrupt pending or timer armed: nothing can wake the vCPU"
                : $"HLT at RIP 0x{_currentIp:x} with interrupts disabled: nothing can wake the vCPU");
    }

    /// <summary>MOV from CR8: TPR bits 7:4.</summary>
    private ulong ReadCr8() => (ulong)(_apic.Tpr >> 4);

    /// <summary>MOV to CR8: TPR bits 7:4 (bits 3:0 cleared); reserved bits 63:4 raise #GP.</summary>
    private void WriteCr8(ulong value)
    {
        if ((value & ~0xFUL) != 0)
        {
            RaiseFault(ExceptionVector.GeneralProtection, 0);
        }

        _apic.Tpr = (byte)(value << 4);
    }

    /// <summary>
    /// The APIC's page in an MMIO access: the vCPU's own APIC when it is in xAPIC mode at that address; the default
    /// page when the APIC is elsewhere, disabled or in x2APIC mode reads as all-ones and ignores writes (as an absent
    /// device). False when <paramref name="gpa"/> is in neither page.
    /// </summary>
    private bool TryApicMmio(ulong gpa, Span<byte> data, bool write)
    {
        var page = gpa & ~0xFFFUL;
        var own = page == _apic.PageAddress;
        if (!own && page != LocalApic.BaseAddress)
        {
            return false;
        }

        var offset = gpa & 0xFFF;
        data = data[..(int)Math.Min((ulong)data.Length, LocalApic.Size - offset)];
        if (own && _apic.IsXapicMode)
        {
            if (write)
            {
                _apic.Write(offset, data);
            }
            else
            {
                _apic.Read(offset, data);
            }
        }
        else if (!write)
        {
            data.Fill(0xFF);
        }

        return true;
    }

    /// <summary>RDMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE or an x2APIC register (a #GP when x2APIC mode is off or the register is not readable).</summary>
    /// <returns>True when <paramref name="msr"/> is one of them.</returns>
    private bool TryReadApicMsr(uint msr, out ulong value)
    {
        switch (msr)
        {
            case MsrApicBase:
                value = _apic.BaseMsr;
                return true;
            case MsrTscDeadline:
                value = _apic.TscDeadline;
                return true;
            case >= 0x800 and <= 0x8FF:
                if (!_apic.TryReadMsr(msr, Tsc, out value))
                {
                    _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: RDMSR of x2APIC MSR 0x{msr:x} (x2APIC mode {(_apic.IsX2ApicMode ? "on, the register is not readable" : "off")})";
                    RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
                }

                return true;
            default:
                value = 0;
                return false;
        }
    }

    /// <summary>WRMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE or an x2APIC register (a #GP for an illegal value or register).</summary>
    /// <returns>True when <paramref name="msr"/> is one of them.</returns>
    private bool TryWriteApicMsr(uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrApicBase:
                if (!_apic.TryWriteBaseMsr(value))
                {
                    _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: WRMSR IA32_APIC_BASE 0x{value:x} sets a reserved bit or makes an illegal mode change";
                    RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
                }

                _apicBase = _apic.BaseMsr;
                return true;
            case MsrTscDeadline:
                _apic.WriteTscDeadline(value);
                return true;
            case >= 0x800 and <= 0x8FF:
                if (!_apic.TryWriteMsr(msr, value, Tsc))
                {
                    _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: WRMSR of x2APIC MSR 0x{msr:x} with 0x{value:x} (x2APIC mode {(_apic.IsX2ApicMode ? "on" : "off")})";
                    RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
                }

                return true;
            default:
                // Any other WRMSR may move the TSC (IA32_TSC, IA32_TSC_ADJUST) under the timer's deadline: look again.
                _eventAt = 0;
                return false;
        }
    }
}
