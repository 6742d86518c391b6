namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>The page contents swap benchmarks store.</summary>
public enum SwapBenchData
{
    /// <summary>Pseudo-random 64-bit words, as memtest writes: incompressible.</summary>
    Memtest,

    /// <summary>ASCII words and numbers: compresses.</summary>
    Text,

    /// <summary>All-zero pages (zram's same-filled pages; the area's zero map).</summary>
    Zero,
}
