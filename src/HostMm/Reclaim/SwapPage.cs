using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>The answer of <see cref="Reclaimer.GetSwapPage"/>.</summary>
/// <param name="Status">How the lookup ended.</param>
/// <param name="Pfn">The locked frame when <see cref="SwapPageStatus.Locked"/>.</param>
/// <param name="Major">True when the page had to be read from the device (a major fault), false for a swap-cache hit.</param>
/// <param name="Cause">For <see cref="SwapPageStatus.MemoryFailure"/>: the device's status.</param>
/// <param name="Active">True when the workingset test put the page straight on the active list.</param>
internal readonly record struct SwapPage(SwapPageStatus Status, Pfn Pfn, bool Major, SwapIoStatus Cause, bool Active);
