using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The result of a swap transfer: a status and, when it failed, the slot that failed. For a run of slots the
/// slot is the first one that failed; every page before it in the run was transferred (and, on a read,
/// verified), and it and every page after it were not.
/// </summary>
/// <param name="Status">What happened.</param>
/// <param name="Slot">The failing slot; 0 (the header slot, never a data slot) when <paramref name="Status"/> is <see cref="SwapIoStatus.Ok"/>.</param>
public readonly record struct SwapIoResult(SwapIoStatus Status, ulong Slot)
{
    /// <summary>The successful result.</summary>
    public static SwapIoResult Success => default;

    /// <summary>True when the transfer succeeded.</summary>
    public bool IsOk => Status == SwapIoStatus.Ok;

    /// <summary>A failure of <paramref name="status"/> at <paramref name="slot"/>.</summary>
    public static SwapIoResult Failed(SwapIoStatus status, ulong slot) => new(status, slot);

    /// <summary><c>ok</c>, or the status and the slot in hex as a report line uses them (<c>ChecksumMismatch at swap slot 0x1f</c>).</summary>
    public override string ToString() =>
        IsOk ? "ok" : string.Create(CultureInfo.InvariantCulture, $"{Status} at swap slot 0x{Slot:x}");
}
