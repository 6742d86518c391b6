using System.Buffers.Binary;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// An I/O APIC (82093AA register model, version 0x20) at 0xFEC00000: IOREGSEL at offset 0, IOWIN at 0x10, the directed
/// EOI register at 0x40; registers ID (0), version (1: 24 redirection entries), arbitration (2) and the redirection
/// table (0x10 + 2n low, 0x11 + 2n high). Each of the 24 pins, when its entry is unmasked, sends the entry's vector to
/// its destination through the <see cref="InterruptRouter"/>: an edge-triggered pin on each rising edge, a
/// level-triggered pin while it is asserted and its remote IRR is clear (set on delivery, cleared by the target's EOI
/// broadcast or a directed EOI, after which a pin still asserted sends again). Entries start masked, as at reset.
/// </summary>
/// <remarks>Thread-safe. Lock order: this device's lock is never held while the router or an APIC is called.</remarks>
public sealed class IoApic : IMmioDevice
{
    /// <summary>The architectural base address.</summary>
    public const ulong BaseAddress = 0xFEC00000;

    /// <summary>The size of the register window the bus maps.</summary>
    public const ulong Size = 0x1000;

    /// <summary>Redirection entries (pins).</summary>
    public const int Pins = 24;

    /// <summary>The version register: version 0x20, maximum redirection entry 23.</summary>
    public const uint VersionValue = 0x0017_0020;

    /// <summary>Redirection entry bit 16: masked.</summary>
    public const ulong Masked = 1UL << 16;

    /// <summary>The I/O APIC id its ID register holds after reset (bits 27:24 of register 0), as the MADT lists it.</summary>
    public const int InitialId = 0;

    /// <summary>The pin of the ISA IRQ 4 (COM1) in the usual identity ISA mapping.</summary>
    public const int Com1Pin = 4;

    private const ulong DeliveryStatus = 1UL << 12;
    private const ulong RemoteIrr = 1UL << 14;
    private const ulong LevelTriggered = 1UL << 15;
    private const ulong WritableLow = 0xFFFF_FFFFUL & ~(DeliveryStatus | RemoteIrr);

    private readonly Lock _lock = new();
    private readonly InterruptRouter _router;
    private readonly ulong[] _entries = new ulong[Pins];
    private readonly bool[] _asserted = new bool[Pins];
    private uint _select;
    private uint _id = InitialId << 24;
    private long _sent;

    /// <summary>Creates the I/O APIC on <paramref name="router"/> and makes it the router's (for EOI broadcasts).</summary>
    public IoApic(InterruptRouter router)
    {
        ArgumentNullException.ThrowIfNull(router);
        _router = router;
        router.IoApic = this;
        for (var pin = 0; pin < Pins; pin++)
        {
            _entries[pin] = Masked;
        }
    }

    /// <inheritdoc />
    public string Name => "ioapic";

    /// <summary>Interrupt messages sent to the local APICs.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>The redirection entry of <paramref name="pin"/> (for reports and tests).</summary>
    public ulong EntryOf(int pin)
    {
        lock (_lock)
        {
            return _entries[pin];
        }
    }

    /// <summary>Registers the register window on <paramref name="bus"/>.</summary>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterMmio(BaseAddress, Size, this);
    }

    /// <summary>A device drives <paramref name="pin"/> to <paramref name="asserted"/> (the line's level).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The pin is not 0–23.</exception>
    public void SetLine(int pin, bool asserted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pin);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pin, Pins);
        ApicMessage? send;
        lock (_lock)
        {
            var rising = asserted && !_asserted[pin];
            _asserted[pin] = asserted;
            send = (_entries[pin] & LevelTriggered) != 0 ? TakeLevelLocked(pin) : rising ? MessageLocked(pin) : null;
        }

        Send(send);
    }

    /// <summary>The EOI of <paramref name="vector"/> (a local APIC's broadcast, or the directed EOI register): clears the remote IRR of every level-triggered entry with that vector, and resends for a pin still asserted.</summary>
    public void EndOfInterrupt(byte vector)
    {
        Span<int> resend = stackalloc int[Pins];
        var count = 0;
        lock (_lock)
        {
            for (var pin = 0; pin < Pins; pin++)
            {
                var entry = _entries[pin];
                if ((entry & RemoteIrr) != 0 && (byte)entry == vector)
                {
                    _entries[pin] = entry & ~RemoteIrr;
                    resend[count++] = pin;
                }
            }
        }

        foreach (var pin in resend[..count])
        {
            ApicMessage? send;
            lock (_lock)
            {
                send = TakeLevelLocked(pin);
            }

            Send(send);
        }
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        uint value;
        lock (_lock)
        {
            value = offset switch
            {
                0x00 => _select,
                0x10 => ReadRegisterLocked(_select),
                _ => 0,
            };
        }

        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        bytes[..Math.Min(4, data.Length)].CopyTo(data);
        data[Math.Min(4, data.Length)..].Clear();
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        Span<byte> bytes = stackalloc byte[4];
        data[..Math.Min(4, data.Length)].CopyTo(bytes);
        var value = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        switch (offset)
        {
            case 0x00:
                lock (_lock)
                {
                    _select = value & 0xFF;
                }

                return;
            case 0x10:
            {
                ApicMessage? send;
                lock (_lock)
                {
                    send = WriteRegisterLocked(_select, value);
                }

                Send(send);
                return;
            }

            case 0x40:
                EndOfInterrupt((byte)value);
                return;
        }
    }

    private uint ReadRegisterLocked(uint index) => index switch
    {
        0 => _id,
        1 => VersionValue,
        2 => _id,
        >= 0x10 and < 0x10 + (2 * Pins) => (index & 1) == 0 ? (uint)_entries[(index - 0x10) >> 1] : (uint)(_entries[(index - 0x10) >> 1] >> 32),
        _ => 0,
    };

    /// <returns>A message to send when unmasking a level-triggered entry whose pin is asserted.</returns>
    private ApicMessage? WriteRegisterLocked(uint index, uint value)
    {
        switch (index)
        {
            case 0:
                _id = value & 0x0F00_0000;
                return null;
            case >= 0x10 and < 0x10 + (2 * Pins):
            {
                var pin = (int)((index - 0x10) >> 1);
                var entry = _entries[pin];
                _entries[pin] = (index & 1) == 0
                    ? (entry & ~WritableLow) | (value & WritableLow)
                    : (entry & 0xFFFF_FFFFUL) | ((ulong)(value & 0xFF00_0000) << 32);
                return (_entries[pin] & LevelTriggered) != 0 ? TakeLevelLocked(pin) : null;
            }

            default:
                return null; // Version and arbitration are read-only.
        }
    }

    /// <summary>A level-triggered pin that is asserted, unmasked and not waiting for its EOI: its message, with remote IRR set.</summary>
    private ApicMessage? TakeLevelLocked(int pin)
    {
        var entry = _entries[pin];
        if (!_asserted[pin] || (entry & (Masked | RemoteIrr)) != 0)
        {
            return null;
        }

        _entries[pin] = entry | RemoteIrr;
        return MessageLocked(pin);
    }

    private ApicMessage? MessageLocked(int pin)
    {
        var entry = _entries[pin];
        if ((entry & Masked) != 0)
        {
            return null;
        }

        return new ApicMessage(
            (byte)entry,
            (ApicDeliveryMode)((entry >> 8) & 7),
            (entry & (1UL << 11)) != 0,
            Assert: true,
            (entry & LevelTriggered) != 0,
            ApicShorthand.None,
            (uint)(entry >> 56));
    }

    private void Send(ApicMessage? message)
    {
        if (message is { } m)
        {
            Interlocked.Increment(ref _sent);
            _router.DeliverFromIoApic(m);
        }
    }
}
