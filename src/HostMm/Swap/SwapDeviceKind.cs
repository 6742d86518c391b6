namespace Hypervisor.HostMm.Swap;

/// <summary>Which device backs a swap area (<c>--swap PATH</c> or <c>--swap zram</c>).</summary>
public enum SwapDeviceKind
{
    /// <summary>A real file (<see cref="FileSwapDevice"/>): the default.</summary>
    File,

    /// <summary>A compressed in-memory device (<see cref="ZramSwapDevice"/>).</summary>
    Zram,
}
