using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// QEMU's fw_cfg over port I/O: a 16-bit selector at 0x510 and a byte-wide data port at 0x511. Writing the selector
/// rewinds the item; each data read returns the next byte, and reads past the item's end (or of an unknown item)
/// return 0. Serves the signature, the interface ID, the RAM size, the CPU count and an optional file directory.
/// Wider data reads return successive bytes little-endian; data writes are ignored (the write interface is gone).
/// </summary>
public sealed class FwCfg : IPortDevice
{
    /// <summary>The selector port.</summary>
    public const ushort SelectorPort = 0x510;

    /// <summary>The data port.</summary>
    public const ushort DataPort = 0x511;

    /// <summary>The length of a file name field in a directory entry, NUL included.</summary>
    public const int FileNameLength = 56;

    /// <summary>The most files the directory holds (selectors 0x20 up to 0x3FFF).</summary>
    public const int MaxFiles = 0x4000 - (int)FwCfgKey.FirstFile;

    private readonly object _lock = new();
    private readonly Dictionary<ushort, byte[]> _items = [];
    private readonly List<(string Name, ushort Key, int Size)> _files = [];
    private byte[] _current = [];
    private int _offset;

    /// <summary>Creates the device with the machine's CPU count and RAM size.</summary>
    /// <param name="cpuCount">CPUs present, 1–65535.</param>
    /// <param name="ramSize">Guest RAM in bytes, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public FwCfg(int cpuCount, ulong ramSize)
    {
        if (cpuCount is < 1 or > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(cpuCount), cpuCount, $"CPU count {cpuCount} is invalid: fw_cfg's NB_CPUS is 16-bit and at least 1");
        }

        if (ramSize == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramSize), ramSize, "RAM size 0 is invalid: a machine has at least one byte of RAM");
        }

        CpuCount = cpuCount;
        RamSize = ramSize;
        _items[(ushort)FwCfgKey.Signature] = "QEMU"u8.ToArray();
        _items[(ushort)FwCfgKey.Id] = Le32(1);
        _items[(ushort)FwCfgKey.RamSize] = Le64(ramSize);
        _items[(ushort)FwCfgKey.CpuCount] = Le16((ushort)cpuCount);
        _items[(ushort)FwCfgKey.MaxCpus] = Le16((ushort)cpuCount);
        _items[(ushort)FwCfgKey.FileDirectory] = BuildDirectory();
        _current = _items[(ushort)FwCfgKey.Signature];
    }

    /// <inheritdoc />
    public string Name => "fw_cfg";

    /// <summary>The CPU count served as NB_CPUS.</summary>
    public int CpuCount { get; }

    /// <summary>The RAM size served as RAM_SIZE.</summary>
    public ulong RamSize { get; }

    /// <summary>The current selector.</summary>
    public ushort Selector { get; private set; }

    /// <summary>Registers the selector and data ports.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(SelectorPort, 2, this);
    }

    /// <summary>Adds a named file (e.g. <c>opt/org.example/config</c>) and lists it in the directory.</summary>
    /// <param name="name">ASCII name, 1–55 bytes, unique.</param>
    /// <param name="contents">The file's bytes (copied).</param>
    /// <returns>The file's selector.</returns>
    /// <exception cref="InvalidFwCfgFileException">The name breaks a rule, or the directory is full.</exception>
    public ushort AddFile(string name, ReadOnlySpan<byte> contents)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name.Length >= FileNameLength)
        {
            throw new InvalidFwCfgFileException(name, $"a name is 1 to {FileNameLength - 1} characters (it has {name.Length})");
        }

        if (!Ascii.IsValid(name) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new InvalidFwCfgFileException(name, "a name is ASCII without NUL");
        }

        lock (_lock)
        {
            if (_files.Exists(f => f.Name == name))
            {
                throw new InvalidFwCfgFileException(name, "file names are unique");
            }

            if (_files.Count == MaxFiles)
            {
                throw new InvalidFwCfgFileException(name, $"the directory holds at most {MaxFiles} files");
            }

            var key = (ushort)((int)FwCfgKey.FirstFile + _files.Count);
            _files.Add((name, key, contents.Length));
            _items[key] = contents.ToArray();
            _items[(ushort)FwCfgKey.FileDirectory] = BuildDirectory();
            if (Selector == key || Selector == (ushort)FwCfgKey.FileDirectory)
            {
                _current = _items[Selector];
            }

            return key;
        }
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        lock (_lock)
        {
            uint value = 0;
            for (var i = 0; i < size; i++)
            {
                uint b = _offset < _current.Length ? _current[_offset] : 0u;
                if (_offset < _current.Length)
                {
                    _offset++;
                }

                value |= b << (8 * i);
            }

            return value;
        }
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        if (port != SelectorPort)
        {
            return; // Data writes: the legacy write interface is not provided.
        }

        lock (_lock)
        {
            Selector = (ushort)value;
            _current = _items.TryGetValue(Selector, out var item) ? item : [];
            _offset = 0;
        }
    }

    private byte[] BuildDirectory()
    {
        var dir = new byte[4 + (64 * _files.Count)];
        BinaryPrimitives.WriteUInt32BigEndian(dir, (uint)_files.Count);
        for (var i = 0; i < _files.Count; i++)
        {
            var entry = dir.AsSpan(4 + (64 * i), 64);
            BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)_files[i].Size);
            BinaryPrimitives.WriteUInt16BigEndian(entry[4..], _files[i].Key);
            Encoding.ASCII.GetBytes(_files[i].Name, entry[8..]);
        }

        return dir;
    }

    private static byte[] Le16(ushort v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }

    private static byte[] Le32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] Le64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }
}
