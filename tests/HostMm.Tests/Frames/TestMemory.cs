using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Tests.Frames;

/// <summary>Small host RAMs for frame tests.</summary>
public static class TestMemory
{
    public const ulong SixtyFourMiB = 64UL << 20;

    /// <summary>64 MiB, 2 nodes: 16384 frames, 8192 per node.</summary>
    public static HostMemory Create(bool audit = false, ulong totalBytes = SixtyFourMiB, int nodes = 2) =>
        new(new HostMemoryOptions { TotalBytes = totalBytes, NodeCount = nodes, AuditFreedFrames = audit });
}
