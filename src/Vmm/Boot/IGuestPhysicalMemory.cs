namespace Hypervisor.Vmm.Boot;

/// <summary>
/// Guest-physical RAM as the boot code sees it: a flat range <c>[0, Size)</c> that can be read and written.
/// The VM adapts its memslots to this; tests use a plain byte array.
/// </summary>
public interface IGuestPhysicalMemory
{
    /// <summary>Bytes of guest RAM, starting at guest-physical address 0.</summary>
    ulong Size { get; }

    /// <summary>Copies <paramref name="data"/> to guest-physical address <paramref name="gpa"/>.</summary>
    /// <param name="gpa">First guest-physical address written.</param>
    /// <param name="data">The bytes to write; <c>[gpa, gpa + data.Length)</c> lies inside RAM.</param>
    void Write(ulong gpa, ReadOnlySpan<byte> data);

    /// <summary>Copies guest RAM at <paramref name="gpa"/> into <paramref name="data"/>.</summary>
    /// <param name="gpa">First guest-physical address read.</param>
    /// <param name="data">Receives <c>data.Length</c> bytes; <c>[gpa, gpa + data.Length)</c> lies inside RAM.</param>
    void Read(ulong gpa, Span<byte> data);
}
