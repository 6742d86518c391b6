using System.Buffers.Binary;

namespace Hypervisor.Vmm.Acpi;

/// <summary>
/// An ACPI Generic Address Structure (12 bytes): address space id, register bit width and bit offset, access size
/// (0 undefined, 1 byte, 2 word, 3 dword, 4 qword) and the 64-bit address.
/// </summary>
/// <param name="SpaceId">The address space (<see cref="SystemIo"/> for port I/O).</param>
/// <param name="BitWidth">The register's width in bits.</param>
/// <param name="BitOffset">The register's bit offset at <paramref name="Address"/>.</param>
/// <param name="AccessSize">The access size code.</param>
/// <param name="Address">The register's address.</param>
public readonly record struct GenericAddress(byte SpaceId, byte BitWidth, byte BitOffset, byte AccessSize, ulong Address)
{
    /// <summary>The size of the structure in bytes.</summary>
    public const int Size = 12;

    /// <summary>Address space id of system I/O (ports).</summary>
    public const byte SystemIo = 1;

    /// <summary>A port register of <paramref name="bytes"/> bytes (1, 2 or 4), accessed at its own width.</summary>
    /// <param name="port">The port.</param>
    /// <param name="bytes">The width in bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bytes"/> is not 1, 2 or 4.</exception>
    public static GenericAddress Port(ushort port, int bytes)
    {
        var access = bytes switch
        {
            1 => (byte)1,
            2 => (byte)2,
            4 => (byte)3,
            _ => throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"port register width {bytes} is invalid: a port register is 1, 2 or 4 bytes"),
        };
        return new GenericAddress(SystemIo, (byte)(bytes * 8), 0, access, port);
    }

    /// <summary>Writes the 12 bytes to the start of <paramref name="destination"/>.</summary>
    /// <param name="destination">At least <see cref="Size"/> bytes.</param>
    public void Write(Span<byte> destination)
    {
        destination[0] = SpaceId;
        destination[1] = BitWidth;
        destination[2] = BitOffset;
        destination[3] = AccessSize;
        BinaryPrimitives.WriteUInt64LittleEndian(destination[4..], Address);
    }
}
