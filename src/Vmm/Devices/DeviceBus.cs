using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// Dispatches guest port I/O (16-bit port space, 1/2/4-byte accesses) and MMIO (guest-physical ranges) to
/// registered devices.
/// </summary>
/// <remarks>
/// <para>Rules: registrations never overlap (the error names both devices). An access whose bytes all belong to one
/// device goes to it whole; one that straddles devices or unowned ports is split into byte accesses, as QEMU's
/// memory core clamps an access to the region it starts in. Unowned ports read as all ones of the access size and
/// ignore writes; unowned MMIO bytes read 0xFF and ignore writes. Each unknown port (and each unknown MMIO page) is
/// logged once, at Debug level, in category <see cref="LogCategory"/>.</para>
/// <para>Concurrency: registration takes a lock and publishes new tables; dispatch reads them without locks, so vCPU
/// threads never contend on the bus (devices lock their own state). Counters are updated with interlocked adds.</para>
/// </remarks>
public sealed class DeviceBus
{
    /// <summary>The logging category of the bus and its devices.</summary>
    public const string LogCategory = "Hypervisor.Vmm.Devices";

    private const int PortCount = 0x10000;

    private readonly object _registrationLock = new();
    private readonly ILogger _logger;

    // Index + 1 into _entries of each port's owner; 0 = unowned. 128 KiB, O(1) dispatch.
    private readonly ushort[] _portOwner = new ushort[PortCount];
    private readonly List<PortRange> _portRanges = [];
    private ImmutableArray<MmioRegion> _mmio = [];

    // Copy-on-write: registration publishes a new array, dispatch reads it without a lock.
    private Entry[] _entries = [];

    // One bit per port: set once the unknown port was logged.
    private readonly int[] _loggedPorts = new int[PortCount / 32];
    private readonly HashSet<ulong> _loggedMmioPages = [];
    private readonly Entry _unknown = new(null);

    /// <summary>Creates an empty bus.</summary>
    /// <param name="logger">Where unknown accesses are reported; null for none. Use category <see cref="LogCategory"/>.</param>
    public DeviceBus(ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The devices registered so far, in registration order.</summary>
    public IReadOnlyList<IDevice> Devices
    {
        get
        {
            return Volatile.Read(ref _entries).Select(e => e.Device!).ToArray();
        }
    }

    /// <summary>Counters of accesses that reached no device.</summary>
    public DeviceCounters UnknownCounters => _unknown.Snapshot();

    /// <summary>Registers <paramref name="device"/> at ports <c>[first, first + count)</c>. A device may own several ranges.</summary>
    /// <param name="first">The first port.</param>
    /// <param name="count">How many ports, at least 1, not past 0xFFFF.</param>
    /// <param name="device">The device.</param>
    /// <exception cref="InvalidDeviceRangeException">The range is empty or runs past port 0xFFFF.</exception>
    /// <exception cref="OverlappingDeviceException">Another device owns one of the ports.</exception>
    public void RegisterPorts(ushort first, int count, IPortDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (count < 1 || first + count > PortCount)
        {
            throw new InvalidDeviceRangeException(
                $"port range of device '{device.Name}' starting at 0x{first:X4} with {count} ports is invalid: a range holds at least one port and ends at or below 0xFFFF",
                nameof(count));
        }

        var range = new PortRange(first, first + count, device);
        lock (_registrationLock)
        {
            foreach (var existing in _portRanges)
            {
                if (range.Start < existing.End && existing.Start < range.End)
                {
                    throw new OverlappingDeviceException("port", device.Name, range.ToString(), existing.Device.Name, existing.ToString());
                }
            }

            var index = EntryIndex(device);
            _portRanges.Add(range);
            for (var p = range.Start; p < range.End; p++)
            {
                Volatile.Write(ref _portOwner[p], (ushort)(index + 1));
            }
        }
    }

    /// <summary>Registers <paramref name="device"/> at guest-physical addresses <c>[gpa, gpa + length)</c>.</summary>
    /// <param name="gpa">The first guest-physical address.</param>
    /// <param name="length">The length in bytes, at least 1, not wrapping past 2^64.</param>
    /// <param name="device">The device.</param>
    /// <exception cref="InvalidDeviceRangeException">The range is empty or wraps.</exception>
    /// <exception cref="OverlappingDeviceException">Another device owns part of the range.</exception>
    public void RegisterMmio(ulong gpa, ulong length, IMmioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (length == 0 || length - 1 > ulong.MaxValue - gpa)
        {
            throw new InvalidDeviceRangeException(
                $"MMIO range of device '{device.Name}' at 0x{gpa:X} with length 0x{length:X} is invalid: a range holds at least one byte and ends at or below 2^64",
                nameof(length));
        }

        var region = new MmioRegion(gpa, gpa + length - 1, device);
        lock (_registrationLock)
        {
            foreach (var existing in _mmio)
            {
                // End may be 0 for a range ending exactly at 2^64; compare on last bytes instead.
                if (region.Start <= existing.Last && existing.Start <= region.Last)
                {
                    throw new OverlappingDeviceException("MMIO", device.Name, region.ToString(), existing.Device.Name, existing.ToString());
                }
            }

            var index = EntryIndex(device);
            region = region with { Entry = _entries[index] };
            _mmio = _mmio.Add(region).Sort((a, b) => a.Start.CompareTo(b.Start));
        }
    }

    /// <summary>The device owning <paramref name="port"/>, or null.</summary>
    /// <param name="port">The port.</param>
    /// <returns>The owner, or null.</returns>
    public IPortDevice? PortOwner(ushort port)
    {
        var owner = Volatile.Read(ref _portOwner[port]);
        return owner == 0 ? null : (IPortDevice)Volatile.Read(ref _entries)[owner - 1].Device!;
    }

    /// <summary>True if <paramref name="gpa"/> lies in a registered MMIO range (the interpreter's RAM-or-device test).</summary>
    /// <param name="gpa">A guest-physical address.</param>
    /// <returns>True if a device owns the address.</returns>
    public bool IsMmio(ulong gpa) => FindRegion(_mmio, gpa) >= 0;

    /// <summary>Counters of the accesses dispatched to <paramref name="device"/>.</summary>
    /// <param name="device">A registered device.</param>
    /// <returns>The snapshot.</returns>
    /// <exception cref="ArgumentException">The device is not registered on this bus.</exception>
    public DeviceCounters CountersOf(IDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        foreach (var entry in Volatile.Read(ref _entries))
        {
            if (ReferenceEquals(entry.Device, device))
            {
                return entry.Snapshot();
            }
        }

        throw new ArgumentException($"device '{device.Name}' is not registered on this bus: counters exist only for registered devices", nameof(device));
    }

    /// <summary>An IN instruction: reads <paramref name="size"/> bytes at <paramref name="port"/>.</summary>
    /// <param name="port">The port.</param>
    /// <param name="size">1, 2 or 4.</param>
    /// <returns>The value, zero-extended; all ones of the access size where no device answers.</returns>
    /// <exception cref="InvalidAccessSizeException">The size is not 1, 2 or 4.</exception>
    public uint ReadPort(ushort port, int size)
    {
        CheckPortSize(size);
        var owner = SingleOwner(port, size);
        if (owner > 0)
        {
            var entry = Volatile.Read(ref _entries)[owner - 1];
            Interlocked.Increment(ref entry.PortReads);
            return ((IPortDevice)entry.Device!).ReadPort(port, size) & SizeMask(size);
        }

        if (owner == 0 && size == 1)
        {
            return ReadUnknownPort(port);
        }

        uint value = 0;
        for (var i = 0; i < size; i++)
        {
            var p = port + i;
            uint b = 0xFF;
            if (p < PortCount)
            {
                b = ReadPort((ushort)p, 1);
            }

            value |= b << (8 * i);
        }

        return value;
    }

    /// <summary>An OUT instruction: writes the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="port"/>.</summary>
    /// <param name="port">The port.</param>
    /// <param name="size">1, 2 or 4.</param>
    /// <param name="value">The value; bits above the access size are ignored.</param>
    /// <exception cref="InvalidAccessSizeException">The size is not 1, 2 or 4.</exception>
    public void WritePort(ushort port, int size, uint value)
    {
        CheckPortSize(size);
        value &= SizeMask(size);
        var owner = SingleOwner(port, size);
        if (owner > 0)
        {
            var entry = Volatile.Read(ref _entries)[owner - 1];
            Interlocked.Increment(ref entry.PortWrites);
            ((IPortDevice)entry.Device!).WritePort(port, size, value);
            return;
        }

        if (owner == 0 && size == 1)
        {
            Interlocked.Increment(ref _unknown.PortWrites);
            LogUnknownPort(port, "write", value);
            return;
        }

        for (var i = 0; i < size; i++)
        {
            var p = port + i;
            if (p < PortCount)
            {
                WritePort((ushort)p, 1, (value >> (8 * i)) & 0xFF);
            }
        }
    }

    /// <summary>An MMIO read of <c>data.Length</c> bytes at <paramref name="gpa"/>; unowned bytes read 0xFF.</summary>
    /// <param name="gpa">The guest-physical address of the first byte.</param>
    /// <param name="data">The destination, at least one byte.</param>
    /// <exception cref="InvalidAccessSizeException">The access is empty.</exception>
    public void ReadMmio(ulong gpa, Span<byte> data)
    {
        CheckMmioSize(data.Length);
        var regions = _mmio;
        while (!data.IsEmpty)
        {
            var chunk = Chunk(regions, gpa, data.Length, out var index);
            if (index >= 0)
            {
                var region = regions[index];
                Interlocked.Increment(ref region.Entry!.MmioReads);
                ((IMmioDevice)region.Device).Read(gpa - region.Start, data[..chunk]);
            }
            else
            {
                Interlocked.Increment(ref _unknown.MmioReads);
                data[..chunk].Fill(0xFF);
                LogUnknownMmio(gpa, "read");
            }

            data = data[chunk..];
            gpa += (ulong)chunk;
        }
    }

    /// <summary>An MMIO write of <paramref name="data"/> at <paramref name="gpa"/>; bytes no device owns are ignored.</summary>
    /// <param name="gpa">The guest-physical address of the first byte.</param>
    /// <param name="data">The bytes, at least one.</param>
    /// <exception cref="InvalidAccessSizeException">The access is empty.</exception>
    public void WriteMmio(ulong gpa, ReadOnlySpan<byte> data)
    {
        CheckMmioSize(data.Length);
        var regions = _mmio;
        while (!data.IsEmpty)
        {
            var chunk = Chunk(regions, gpa, data.Length, out var index);
            if (index >= 0)
            {
                var region = regions[index];
                Interlocked.Increment(ref region.Entry!.MmioWrites);
                ((IMmioDevice)region.Device).Write(gpa - region.Start, data[..chunk]);
            }
            else
            {
                Interlocked.Increment(ref _unknown.MmioWrites);
                LogUnknownMmio(gpa, "write");
            }

            data = data[chunk..];
            gpa += (ulong)chunk;
        }
    }

    /// <summary>All ones in the low <paramref name="size"/> bytes.</summary>
    /// <param name="size">1, 2 or 4.</param>
    /// <returns>0xFF, 0xFFFF or 0xFFFFFFFF.</returns>
    public static uint SizeMask(int size) => size >= 4 ? uint.MaxValue : (1u << (8 * size)) - 1;

    private static void CheckPortSize(int size)
    {
        if (size is not (1 or 2 or 4))
        {
            throw new InvalidAccessSizeException(size, "port accesses are 1, 2 or 4 bytes", nameof(size));
        }
    }

    private static void CheckMmioSize(int size)
    {
        if (size < 1)
        {
            throw new InvalidAccessSizeException(size, "MMIO accesses are at least 1 byte", "data");
        }
    }

    // Owner index + 1 if all bytes belong to one device; 0 if the first byte is unowned and the access is one
    // byte; -1 if the access must be split.
    private int SingleOwner(ushort port, int size)
    {
        int first = Volatile.Read(ref _portOwner[port]);
        if (size == 1)
        {
            return first;
        }

        if (first == 0 || port + size > PortCount)
        {
            return -1;
        }

        for (var i = 1; i < size; i++)
        {
            if (Volatile.Read(ref _portOwner[port + i]) != first)
            {
                return -1;
            }
        }

        return first;
    }

    private uint ReadUnknownPort(ushort port)
    {
        Interlocked.Increment(ref _unknown.PortReads);
        LogUnknownPort(port, "read", null);
        return 0xFF;
    }

    private void LogUnknownPort(ushort port, string direction, uint? value)
    {
        var bit = 1 << (port & 31);
        if ((Interlocked.Or(ref _loggedPorts[port >> 5], bit) & bit) != 0)
        {
            return;
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            var what = value is { } v ? $"write of 0x{v:X2}" : direction;
            _logger.LogDebug(
                "unknown I/O port 0x{Port:X4} ({Access}): no device; reads return all ones, writes are ignored (logged once per port)",
                port,
                what);
        }
    }

    private void LogUnknownMmio(ulong gpa, string direction)
    {
        var page = gpa >> 12;
        lock (_loggedMmioPages)
        {
            if (!_loggedMmioPages.Add(page))
            {
                return;
            }
        }

        _logger.LogDebug(
            "unknown MMIO {Access} at 0x{Gpa:X}: no device; reads return 0xFF, writes are ignored (logged once per 4 KiB page)",
            direction,
            gpa);
    }

    private static int FindRegion(ImmutableArray<MmioRegion> regions, ulong gpa)
    {
        for (var i = 0; i < regions.Length; i++)
        {
            if (gpa >= regions[i].Start && gpa <= regions[i].Last)
            {
                return i;
            }
        }

        return -1;
    }

    // How many bytes from gpa stay inside one region (index >= 0) or inside one gap (index -1).
    private static int Chunk(ImmutableArray<MmioRegion> regions, ulong gpa, int length, out int index)
    {
        index = FindRegion(regions, gpa);
        ulong limit;
        if (index >= 0)
        {
            limit = regions[index].Last - gpa + 1; // 0 only for a region ending at 2^64: unlimited
        }
        else
        {
            limit = ulong.MaxValue;
            foreach (var r in regions)
            {
                if (r.Start > gpa)
                {
                    limit = Math.Min(limit, r.Start - gpa);
                }
            }
        }

        return limit == 0 || limit >= (ulong)length ? length : (int)limit;
    }

    // Called under the registration lock.
    private int EntryIndex(IDevice device)
    {
        var entries = _entries;
        for (var i = 0; i < entries.Length; i++)
        {
            if (ReferenceEquals(entries[i].Device, device))
            {
                return i;
            }
        }

        if (entries.Length == ushort.MaxValue)
        {
            throw new InvalidOperationException($"device '{device.Name}' cannot be registered: a bus holds at most {ushort.MaxValue} devices");
        }

        Volatile.Write(ref _entries, [.. entries, new Entry(device)]);
        return entries.Length;
    }

    private readonly record struct PortRange(int Start, int End, IDevice Device)
    {
        public override string ToString() => $"[0x{Start:X4}, 0x{End:X4})";
    }

    // Last is inclusive so that a range may end at 2^64.
    private readonly record struct MmioRegion(ulong Start, ulong Last, IDevice Device, Entry? Entry = null)
    {
        public override string ToString() => $"[0x{Start:X}, 0x{Last:X}]";
    }

    private sealed class Entry(IDevice? device)
    {
        public long PortReads;
        public long PortWrites;
        public long MmioReads;
        public long MmioWrites;

        public IDevice? Device { get; } = device;

        public DeviceCounters Snapshot() => new(
            Interlocked.Read(ref PortReads),
            Interlocked.Read(ref PortWrites),
            Interlocked.Read(ref MmioReads),
            Interlocked.Read(ref MmioWrites));
    }
}
