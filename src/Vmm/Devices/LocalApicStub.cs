using System.Buffers.Binary;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A local APIC register page at 0xFEE00000 (4 KiB) that answers enough for guests that probe it: the ID register
/// (0x20) reads vCPU id &lt;&lt; 24, the version register (0x30) reads 0x00050014 (version 0x14, 6 LVT entries); TPR (0x80),
/// EOI (0xB0), LDR (0xD0), DFR (0xE0), SVR (0xF0) and ICR (0x300/0x310) store what the guest writes (EOI writes are
/// counted; the ICR delivery-status bit always reads idle because no IPI is ever in flight). Every other register
/// reads 0 and ignores writes. Registers are 32 bits at 16-byte strides; bytes 4–15 of a slot read 0.
/// One instance per vCPU: each vCPU sees its own APIC at the same address.
/// </summary>
public sealed class LocalApicStub : IMmioDevice
{
    /// <summary>The architectural default base address.</summary>
    public const ulong BaseAddress = 0xFEE00000;

    /// <summary>The size of the register page.</summary>
    public const ulong Size = 0x1000;

    /// <summary>The version register's value: version 0x14, max LVT entry 5.</summary>
    public const uint VersionValue = 0x00050014;

    /// <summary>ID register offset.</summary>
    public const int IdRegister = 0x20;

    /// <summary>Version register offset.</summary>
    public const int VersionRegister = 0x30;

    /// <summary>Task priority register offset.</summary>
    public const int TprRegister = 0x80;

    /// <summary>End-of-interrupt register offset.</summary>
    public const int EoiRegister = 0xB0;

    /// <summary>Logical destination register offset.</summary>
    public const int LdrRegister = 0xD0;

    /// <summary>Destination format register offset.</summary>
    public const int DfrRegister = 0xE0;

    /// <summary>Spurious interrupt vector register offset.</summary>
    public const int SvrRegister = 0xF0;

    /// <summary>Interrupt command register, low half.</summary>
    public const int IcrLowRegister = 0x300;

    /// <summary>Interrupt command register, high half.</summary>
    public const int IcrHighRegister = 0x310;

    private const uint IcrDeliveryPending = 1u << 12;

    private readonly object _lock = new();
    private readonly Dictionary<int, uint> _stored = new()
    {
        [TprRegister] = 0,
        [EoiRegister] = 0,
        [LdrRegister] = 0,
        [DfrRegister] = 0xFFFFFFFF,
        [SvrRegister] = 0xFF,
        [IcrLowRegister] = 0,
        [IcrHighRegister] = 0,
    };

    private long _eoiCount;
    private long _icrWrites;

    /// <summary>Creates the APIC of vCPU <paramref name="vcpuId"/>.</summary>
    /// <param name="vcpuId">The vCPU's APIC id, 0–255 (xAPIC ids are 8 bits).</param>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside 0–255.</exception>
    public LocalApicStub(int vcpuId = 0)
    {
        if (vcpuId is < 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpuId), vcpuId, $"APIC id {vcpuId} is invalid: xAPIC ids are 0 to 255");
        }

        VcpuId = vcpuId;
    }

    /// <inheritdoc />
    public string Name => $"lapic{VcpuId}";

    /// <summary>The vCPU (APIC) id.</summary>
    public int VcpuId { get; }

    /// <summary>EOI writes seen.</summary>
    public long EoiCount => Interlocked.Read(ref _eoiCount);

    /// <summary>ICR low writes seen (IPIs requested, none delivered).</summary>
    public long IcrWrites => Interlocked.Read(ref _icrWrites);

    /// <summary>Registers the page at <see cref="BaseAddress"/>.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterMmio(BaseAddress, Size, this);
    }

    /// <summary>The 32-bit value a read of register <paramref name="offset"/> returns.</summary>
    /// <param name="offset">A register offset (16-byte aligned).</param>
    /// <returns>The value.</returns>
    public uint ReadRegister(int offset)
    {
        switch (offset)
        {
            case IdRegister:
                return (uint)VcpuId << 24;
            case VersionRegister:
                return VersionValue;
            default:
                lock (_lock)
                {
                    return _stored.TryGetValue(offset, out var v) ? v : 0;
                }
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
                BinaryPrimitives.WriteUInt32LittleEndian(dword, ReadRegister(register));
                data.Slice(i, bytes).CopyTo(dword[within..]);
                WriteRegister(register, BinaryPrimitives.ReadUInt32LittleEndian(dword));
            }

            i += n;
        }
    }

    private void WriteRegister(int register, uint value)
    {
        switch (register)
        {
            case EoiRegister:
                Interlocked.Increment(ref _eoiCount);
                break;
            case IcrLowRegister:
                Interlocked.Increment(ref _icrWrites);
                value &= ~IcrDeliveryPending;
                break;
            case TprRegister:
                value &= 0xFF;
                break;
            case LdrRegister:
                value &= 0xFF000000;
                break;
            case DfrRegister:
                value |= 0x0FFFFFFF;
                break;
            case SvrRegister:
                value &= 0x13FF;
                break;
            case IcrHighRegister:
                value &= 0xFF000000;
                break;
            default:
                return;
        }

        lock (_lock)
        {
            _stored[register] = value;
        }
    }
}
