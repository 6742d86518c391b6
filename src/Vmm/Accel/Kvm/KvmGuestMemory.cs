using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// <see cref="IGuestPhysicalMemory"/> over a <see cref="KvmMachine"/>'s mmap'ed RAM (memslot 0 at guest-physical 0).
/// Every access is bounds-checked; an access after the machine is disposed throws <see cref="ObjectDisposedException"/>.
/// </summary>
// unsafe: guest RAM is an mmap'ed host range addressed by pointer.
internal sealed unsafe class KvmGuestMemory : IGuestPhysicalMemory
{
    private readonly KvmMachine _owner;
    private readonly byte* _base;

    /// <summary>Wraps <paramref name="size"/> bytes at <paramref name="baseAddress"/>, owned by <paramref name="owner"/>.</summary>
    /// <param name="owner">The machine whose lifetime bounds the mapping.</param>
    /// <param name="baseAddress">The host address of guest-physical 0.</param>
    /// <param name="size">Bytes of RAM.</param>
    public KvmGuestMemory(KvmMachine owner, nint baseAddress, ulong size)
    {
        _owner = owner;
        _base = (byte*)baseAddress;
        Size = size;
    }

    /// <inheritdoc />
    public ulong Size { get; }

    /// <inheritdoc />
    public void Write(ulong gpa, ReadOnlySpan<byte> data)
    {
        data.CopyTo(Window(gpa, data.Length));
    }

    /// <inheritdoc />
    public void Read(ulong gpa, Span<byte> data)
    {
        Window(gpa, data.Length).CopyTo(data);
    }

    private Span<byte> Window(ulong gpa, int length)
    {
        _owner.ThrowIfDisposed();
        if (gpa > Size || (ulong)length > Size - gpa)
        {
            throw new ArgumentOutOfRangeException(
                nameof(gpa),
                gpa,
                $"guest-physical range [0x{gpa:x}, 0x{gpa + (ulong)length:x}) lies outside guest RAM of 0x{Size:x} bytes: accesses must end at or below the RAM size");
        }

        return new Span<byte>(_base + gpa, length);
    }
}
