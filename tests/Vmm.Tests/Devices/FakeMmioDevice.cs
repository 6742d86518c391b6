using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

/// <summary>An MMIO device backed by a byte array, recording the offsets and lengths it is given.</summary>
public sealed class FakeMmioDevice(string name, int size) : IMmioDevice
{
    public string Name { get; } = name;

    public byte[] Memory { get; } = new byte[size];

    public List<(string Kind, ulong Offset, int Length)> Accesses { get; } = [];

    public void Read(ulong offset, Span<byte> data)
    {
        Accesses.Add(("read", offset, data.Length));
        Memory.AsSpan((int)offset, data.Length).CopyTo(data);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        Accesses.Add(("write", offset, data.Length));
        data.CopyTo(Memory.AsSpan((int)offset));
    }
}
