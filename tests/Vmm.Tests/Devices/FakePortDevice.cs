using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

/// <summary>A port device that records the accesses it receives and answers reads with a fixed value.</summary>
public sealed class FakePortDevice(string name, uint readValue = 0x12345678) : IPortDevice
{
    public string Name { get; } = name;

    public List<(string Kind, ushort Port, int Size, uint Value)> Accesses { get; } = [];

    public uint ReadPort(ushort port, int size)
    {
        Accesses.Add(("read", port, size, 0));
        return readValue;
    }

    public void WritePort(ushort port, int size, uint value) => Accesses.Add(("write", port, size, value));
}
