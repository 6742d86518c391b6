namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>The kinds of page content swap tests write (<see cref="SwapPages"/>).</summary>
public enum SwapPageKind
{
    /// <summary>Pseudo-random bytes, as memtest writes: incompressible.</summary>
    Random,

    /// <summary>All zero.</summary>
    Zero,

    /// <summary>One 8-byte value repeated, not zero.</summary>
    SameFilled,

    /// <summary>ASCII words: compresses about 2-3x.</summary>
    Text,
}
