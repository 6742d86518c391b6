namespace Hypervisor.Vmm.Devices;

/// <summary>One 8259A's programming state: the ICW1–ICW4 initialisation sequence, the mask (OCW1), and OCW2/OCW3 commands.</summary>
internal sealed class PicChip
{
    private int _expectedIcw; // 0 = ready (data writes are OCW1), else the next ICW number (2, 3, 4).
    private bool _needsIcw4;
    private bool _readIsr;

    public byte Mask { get; private set; }

    public byte VectorBase { get; private set; }

    public byte Cascade { get; private set; }

    public byte Mode { get; private set; }

    public bool Initialized { get; private set; }

    public long EoiCount { get; private set; }

    public void WriteCommand(byte value)
    {
        if ((value & 0x10) != 0)
        {
            // ICW1: start initialisation; the IMR is cleared and ICW2 comes next.
            _needsIcw4 = (value & 0x01) != 0;
            _expectedIcw = 2;
            Mask = 0;
            _readIsr = false;
            Initialized = false;
        }
        else if ((value & 0x08) != 0)
        {
            // OCW3: bits 1–0 = 10 selects IRR, 11 selects ISR for command-port reads.
            if ((value & 0x02) != 0)
            {
                _readIsr = (value & 0x01) != 0;
            }
        }
        else if ((value & 0x20) != 0)
        {
            EoiCount++; // OCW2 with EOI (specific or not).
        }
    }

    public byte ReadCommand() => 0; // IRR and ISR: no interrupt is ever requested or in service.

    public bool ReadsIsr => _readIsr;

    public void WriteData(byte value)
    {
        switch (_expectedIcw)
        {
            case 2:
                VectorBase = (byte)(value & 0xF8);
                _expectedIcw = 3;
                break;
            case 3:
                Cascade = value;
                _expectedIcw = _needsIcw4 ? 4 : 0;
                Initialized = !_needsIcw4;
                break;
            case 4:
                Mode = value;
                _expectedIcw = 0;
                Initialized = true;
                break;
            default:
                Mask = value; // OCW1.
                break;
        }
    }

    public byte ReadData() => Mask;
}
