using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>Guest RAM as a byte array, pre-filled with 0xCC so that zero-filling is visible; out-of-range access fails the test.</summary>
internal sealed class FakeGuestMemory : IGuestPhysicalMemory
{
    private readonly byte[] _ram;

    public FakeGuestMemory(ulong size)
    {
        _ram = new byte[size];
        _ram.AsSpan().Fill(0xCC);
    }

    public ulong Size => (ulong)_ram.Length;

    public int Writes { get; private set; }

    public void Write(ulong gpa, ReadOnlySpan<byte> data)
    {
        Assert.That(gpa + (ulong)data.Length, Is.LessThanOrEqualTo(Size), $"write [0x{gpa:x}, +0x{data.Length:x}) outside RAM");
        data.CopyTo(_ram.AsSpan((int)gpa));
        Writes++;
    }

    public void Read(ulong gpa, Span<byte> data)
    {
        Assert.That(gpa + (ulong)data.Length, Is.LessThanOrEqualTo(Size), $"read [0x{gpa:x}, +0x{data.Length:x}) outside RAM");
        _ram.AsSpan((int)gpa, data.Length).CopyTo(data);
    }

    public byte[] Bytes(ulong gpa, int count) => _ram.AsSpan((int)gpa, count).ToArray();

    public ulong U64(ulong gpa) => BitConverter.ToUInt64(_ram, (int)gpa);

    public uint U32(ulong gpa) => BitConverter.ToUInt32(_ram, (int)gpa);
}
