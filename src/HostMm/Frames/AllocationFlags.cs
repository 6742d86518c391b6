namespace Hypervisor.HostMm.Frames;

/// <summary>How <see cref="HostMemory.Allocate"/> picks and prepares a frame (a tiny <c>gfp_t</c>).</summary>
[Flags]
public enum AllocationFlags
{
    /// <summary>Any free frame, preferred node first, contents undefined.</summary>
    None = 0,

    /// <summary>Demand-zero: the frame's 4 KiB are cleared before it is handed out (__GFP_ZERO).</summary>
    Zero = 1 << 0,

    /// <summary>Fail rather than fall back to another node (__GFP_THISNODE).</summary>
    ExactNode = 1 << 1,
}
