namespace Hypervisor.HostMm.Frames;

/// <summary>One way <see cref="Crc32C"/> can compute a checksum; each gives the same value, at its own speed.</summary>
public enum Crc32CPath
{
    /// <summary>One table lookup per byte: runs everywhere.</summary>
    Table = 0,

    /// <summary>The SSE4.2 <c>crc32</c> instruction, one dependent chain of 8-byte words.</summary>
    Sse42,

    /// <summary>Three independent <c>crc32</c> chains over three blocks, combined with one PCLMULQDQ each.</summary>
    Sse42Interleaved,

    /// <summary>Carry-less-multiply folding of four <c>Vector256</c> accumulators (8 × 128-bit lanes, 128 bytes a step) with VPCLMULQDQ, reduced with <c>crc32</c>.</summary>
    Fold256,

    /// <summary>Carry-less-multiply folding of four <c>Vector512</c> accumulators (16 × 128-bit lanes, 256 bytes a step) with VPCLMULQDQ, reduced with <c>crc32</c>.</summary>
    Fold512,
}
