using Hypervisor.Notifier;
using Hypervisor.Vmm.Boot;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// Guest RAM as the boot loader sees it: gpa <c>[0, Size)</c> is the host process's anonymous mapping at
/// <see cref="Base"/> (memslot 0), read and written through the host MM like any process access — so loading
/// an image demand-faults host frames exactly as a VMM's <c>read()</c> into guest memory would.
/// </summary>
public sealed class GuestRam(HostProcess process, Hva baseAddress, ulong size) : IGuestPhysicalMemory
{
    /// <summary>The host process whose anonymous memory guest RAM is.</summary>
    public HostProcess Process { get; } = process;

    /// <summary>
    /// Guest RAM's resident pages per host NUMA node (numa_maps' <c>N0=… N1=…</c> over the memslot): one count per node,
    /// all zero once the process has exited.
    /// </summary>
    public long[] ResidentPagesPerNode() => Process.HasExited
        ? new long[Process.Host.Memory.NodeCount]
        : Process.ResidentPagesPerNode(Base, Base + Size);

    /// <summary>The host virtual address of gpa 0.</summary>
    public Hva Base { get; } = baseAddress;

    /// <inheritdoc />
    public ulong Size { get; } = size;

    /// <inheritdoc />
    public void Write(ulong gpa, ReadOnlySpan<byte> data)
    {
        Check(gpa, data.Length);
        Process.Write(Base + gpa, data);
    }

    /// <inheritdoc />
    public void Read(ulong gpa, Span<byte> data)
    {
        Check(gpa, data.Length);
        Process.Read(Base + gpa, data);
    }

    private void Check(ulong gpa, int length)
    {
        if (gpa > Size || (ulong)length > Size - gpa)
        {
            throw new ArgumentOutOfRangeException(nameof(gpa), gpa, $"[0x{gpa:x}, 0x{gpa + (ulong)length:x}) is outside guest RAM of 0x{Size:x} bytes");
        }
    }
}
