namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>One mechanism's figures at the end of a stress run (a report row).</summary>
public sealed record StressMechanismResult
{
    /// <summary>Which mechanism.</summary>
    public required StressMechanismKind Kind { get; init; }

    /// <summary>Its name in the report.</summary>
    public required string Name { get; init; }

    /// <summary>What one operation is.</summary>
    public required string OperationName { get; init; }

    /// <summary>Operations run.</summary>
    public required long Operations { get; init; }

    /// <summary>Operations per second of the stress phase.</summary>
    public required double OperationsPerSecond { get; init; }

    /// <summary>What <see cref="Effect"/> counts.</summary>
    public required string EffectName { get; init; }

    /// <summary>The mechanism's effect on guest memory (pages moved, merged, swapped …).</summary>
    public required long Effect { get; init; }

    /// <summary>Further figures, in words.</summary>
    public required string Detail { get; init; }

    /// <summary>The first operations run (for a scheduled mechanism: the prefix of its schedule this run reached).</summary>
    public required IReadOnlyList<StressOperation> Sample { get; init; }

    /// <summary>Both counters are non-zero: the mechanism ran and reached guest memory.</summary>
    public bool Active => Operations > 0 && Effect > 0;
}
