namespace Hypervisor.HostMm;

/// <summary>The kind of access that faulted.</summary>
public enum FaultAccess
{
    /// <summary>A load.</summary>
    Read,

    /// <summary>A store.</summary>
    Write,

    /// <summary>An instruction fetch.</summary>
    Execute,
}
