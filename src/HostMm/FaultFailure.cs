using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm;

/// <summary>
/// Why a fault that ended in <see cref="FaultResult.MemoryFailure"/> failed: the swap slot it needed and what the
/// device or the checksum said. Default (no slot, <see cref="SwapIoStatus.Ok"/>) for every other outcome.
/// </summary>
/// <param name="SwapSlot">The slot whose read failed.</param>
/// <param name="Cause">The device's status: an I/O error or a checksum mismatch.</param>
public readonly record struct FaultFailure(ulong SwapSlot, SwapIoStatus Cause)
{
    /// <inheritdoc />
    public override string ToString() => $"swap slot {SwapSlot}: {Cause}";
}
