using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.GuestMmu.Backing;

/// <summary>
/// <see cref="IGuestMemoryBacking"/> over a process of HostMm, the simulated primary MMU: anonymous memory of a host
/// process backs guest RAM, exactly as a VMM's <c>mmap</c> does under KVM. This is the only GuestMmu type that names
/// HostMm's process; everything else sees the interface.
/// </summary>
/// <remarks>
/// Frames are host-wide: every process of one <see cref="Host"/> shares its frame arena, so two adapters over
/// processes of one host agree on what a <see cref="Pfn"/> is. Stateless apart from the process; any number of
/// adapters over one process are equivalent (memslots match notifier ranges by <see cref="Mm"/>).
/// </remarks>
public sealed unsafe class HostProcessBacking : IGuestMemoryBacking // unsafe: hands out the frame arena's raw addresses.
{
    private readonly HostProcess _process;
    private readonly HostMemory _memory;

    /// <summary>Adapts <paramref name="process"/>.</summary>
    public HostProcessBacking(HostProcess process)
    {
        ArgumentNullException.ThrowIfNull(process);
        _process = process;
        _memory = process.Host.Memory;
    }

    /// <summary>The adapted host process.</summary>
    public HostProcess Process => _process;

    /// <inheritdoc />
    public IMm Mm => _process;

    /// <inheritdoc />
    public ulong TotalFrames => (ulong)_memory.TotalFrames;

    /// <inheritdoc />
    public BackingPage Resolve(Hva address, bool write)
    {
        var page = _process.GetUserPages(address, write);
        return page.Fault switch
        {
            FaultResult.SegmentationFault => BackingPage.Failed(BackingStatus.Unmapped),
            FaultResult.ProtectionViolation => BackingPage.Failed(BackingStatus.Forbidden),
            FaultResult.OutOfMemory => BackingPage.Failed(BackingStatus.OutOfMemory, $"{_process} at {address}: {_process.Cgroup} and host RAM gave no frame after reclaim"),
            FaultResult.MemoryFailure => BackingPage.Failed(BackingStatus.MemoryFailure, $"{_process} at {address}: swap slot {page.Failure.SwapSlot}: {Describe(page.Failure.Cause)}"),
            _ => BackingPage.Resolved(page.Pfn, page.Writable) with { HostHuge = page.HostHuge },
        };
    }

    /// <inheritdoc />
    public void Release(Pfn pfn) => _process.ReleasePage(pfn);

    /// <inheritdoc />
    public void MarkDirty(Pfn pfn, ulong count)
    {
        for (ulong i = 0; i < count; i++)
        {
            _memory.SetFlags(pfn + i, FrameFlags.Dirty);
        }
    }

    /// <inheritdoc />
    public nint FrameAddress(Pfn pfn) => (nint)_memory.FrameAddress(pfn);

    /// <inheritdoc />
    public BackingFrameState QueryFrame(Pfn pfn) =>
        pfn.Value >= (ulong)_memory.TotalFrames ? BackingFrameState.OutOfRange
        : _memory.IsFree(pfn) ? BackingFrameState.Free
        : BackingFrameState.InUse;

    /// <inheritdoc />
    public HostPte ReadPte(Hva address) => _process.HasExited ? HostPte.None : _process.PageTable.Read(address);

    /// <inheritdoc />
    public override string ToString() => $"{_process} (host process)";

    /// <summary>A swap read's failure in words, for a memory-failure report.</summary>
    private static string Describe(SwapIoStatus cause) => cause switch
    {
        SwapIoStatus.ChecksumMismatch => "checksum mismatch",
        SwapIoStatus.IoError => "read I/O error",
        _ => cause.ToString(),
    };
}
