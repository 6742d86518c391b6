using System.Diagnostics;
using Hypervisor.Vmm.Acpi;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The ACPI power-management timer at port 0x608 (PM_TMR_BLK): a free-running 32-bit counter (the FADT sets
/// TMR_VAL_EXT) at 3.579545 MHz of the VM's time, read-only. Time comes from <see cref="Clock"/> in nanoseconds: on the
/// interpreter the boot vCPU's virtual clock (its TSC at 1 GHz), so the timer and the TSC agree exactly and runs are
/// reproducible; by default (the KVM accelerator) the host's monotonic clock since the device was created.
/// </summary>
/// <remarks>Invariant: the counter is <c>floor(ns × 3579545 / 10⁹) mod 2³²</c> of the clock; a clock that never goes
/// back gives a counter that only wraps.</remarks>
public sealed class AcpiPmTimer : IPortDevice
{
    /// <summary>The timer's port.</summary>
    public const ushort Port = AcpiPlatform.PmTimerPort;

    private Func<long> _clock;

    /// <summary>Creates the timer on <paramref name="clock"/>, or on the host's monotonic clock from now.</summary>
    /// <param name="clock">Nanoseconds of VM time, or null for a <see cref="Stopwatch"/> started now.</param>
    public AcpiPmTimer(Func<long>? clock = null)
    {
        _clock = clock ?? HostClock();
    }

    /// <inheritdoc />
    public string Name => "acpi-pm-timer";

    /// <summary>The time source in nanoseconds (set before the VM runs; read from any vCPU's thread).</summary>
    public Func<long> Clock
    {
        get => Volatile.Read(ref _clock);
        set => Volatile.Write(ref _clock, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>The counter now.</summary>
    public uint Value => TicksAt(Clock());

    /// <summary>The counter at <paramref name="nanoseconds"/> of VM time (negative times read as 0).</summary>
    /// <param name="nanoseconds">VM time.</param>
    public static uint TicksAt(long nanoseconds) =>
        nanoseconds <= 0 ? 0 : (uint)((UInt128)(ulong)nanoseconds * AcpiPlatform.PmTimerHz / 1_000_000_000UL);

    /// <summary>A clock of host nanoseconds since the call.</summary>
    public static Func<long> HostClock()
    {
        var start = Stopwatch.GetTimestamp();
        return () => (long)((UInt128)(ulong)(Stopwatch.GetTimestamp() - start) * 1_000_000_000UL / (ulong)Stopwatch.Frequency);
    }

    /// <summary>Registers the timer's 4 ports.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Port, AcpiPlatform.PmTimerLength, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size) => (Value >> (8 * (port - Port))) & DeviceBus.SizeMask(size);

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        // Read-only: writes are ignored, as on hardware.
    }
}
