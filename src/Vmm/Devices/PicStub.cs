namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The two cascaded 8259A PICs: master at 0x20/0x21, slave at 0xA0/0xA1. Accepts the ICW1–ICW4 initialisation
/// sequence (recording vector bases), stores the masks written as OCW1, and returns the mask on data-port reads.
/// No interrupt is ever raised: IRR and ISR read 0. Enough for guests (and Linux) that remap and mask the PICs.
/// </summary>
public sealed class PicStub : IPortDevice
{
    /// <summary>Master command port.</summary>
    public const ushort MasterCommand = 0x20;

    /// <summary>Master data port.</summary>
    public const ushort MasterData = 0x21;

    /// <summary>Slave command port.</summary>
    public const ushort SlaveCommand = 0xA0;

    /// <summary>Slave data port.</summary>
    public const ushort SlaveData = 0xA1;

    private readonly object _lock = new();
    private readonly PicChip _master = new();
    private readonly PicChip _slave = new();

    /// <inheritdoc />
    public string Name => "i8259";

    /// <summary>The master's interrupt mask (IMR).</summary>
    public byte MasterMask { get { lock (_lock) { return _master.Mask; } } }

    /// <summary>The slave's interrupt mask (IMR).</summary>
    public byte SlaveMask { get { lock (_lock) { return _slave.Mask; } } }

    /// <summary>The master's vector base from ICW2.</summary>
    public byte MasterVectorBase { get { lock (_lock) { return _master.VectorBase; } } }

    /// <summary>The slave's vector base from ICW2.</summary>
    public byte SlaveVectorBase { get { lock (_lock) { return _slave.VectorBase; } } }

    /// <summary>True once both chips have completed an initialisation sequence since their last ICW1.</summary>
    public bool Initialized { get { lock (_lock) { return _master.Initialized && _slave.Initialized; } } }

    /// <summary>EOI commands (OCW2) seen by both chips.</summary>
    public long EoiCount { get { lock (_lock) { return _master.EoiCount + _slave.EoiCount; } } }

    /// <summary>Registers both chips' ports.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(MasterCommand, 2, this);
        bus.RegisterPorts(SlaveCommand, 2, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        lock (_lock)
        {
            uint value = 0;
            for (var i = 0; i < size; i++)
            {
                var p = port + i;
                var chip = Chip(p);
                byte b = (p & 1) == 0 ? chip.ReadCommand() : chip.ReadData();
                value |= (uint)b << (8 * i);
            }

            return value;
        }
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        lock (_lock)
        {
            for (var i = 0; i < size; i++)
            {
                var p = port + i;
                var b = (byte)(value >> (8 * i));
                if ((p & 1) == 0)
                {
                    Chip(p).WriteCommand(b);
                }
                else
                {
                    Chip(p).WriteData(b);
                }
            }
        }
    }

    private PicChip Chip(int port) => port < SlaveCommand ? _master : _slave;
}
