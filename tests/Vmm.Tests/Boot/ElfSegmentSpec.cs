namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>One program header for <see cref="ElfBuilder"/>; data is placed at <see cref="ElfBuilder.DataOffset"/> + 0x1000 × index unless <see cref="Offset"/> is set.</summary>
internal sealed class ElfSegmentSpec
{
    public uint Type { get; init; } = 1;

    public uint Flags { get; init; } = 7;

    public ulong PhysicalAddress { get; init; }

    public ulong? VirtualAddress { get; init; }

    public byte[] Data { get; init; } = [];

    public ulong? MemorySize { get; init; }

    public ulong? Offset { get; init; }

    public ulong? FileSize { get; init; }

    public ulong Align { get; init; } = 4;

    public static ElfSegmentSpec Load(ulong paddr, byte[] data, ulong? memorySize = null) =>
        new() { PhysicalAddress = paddr, Data = data, MemorySize = memorySize };

    public static ElfSegmentSpec Note(params byte[][] notes) =>
        new() { Type = 4, Flags = 4, Data = [.. notes.SelectMany(n => n)] };
}
