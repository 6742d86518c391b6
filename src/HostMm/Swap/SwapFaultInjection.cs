using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// Settings of a <see cref="FaultInjectingSwapDevice"/> (<c>--inject-swap-errors RATE</c>): per-page probabilities
/// drawn from one seeded generator, so a single-threaded sequence of calls fails identically on every run.
/// </summary>
public sealed record SwapFaultInjection
{
    /// <summary>Seed of the generator; the same seed and the same calls give the same faults.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Probability (0 to 1) that a page read reports <see cref="SwapIoStatus.IoError"/>.</summary>
    public double ReadErrorRate { get; init; }

    /// <summary>Probability (0 to 1) that a page write fails with <see cref="WriteErrorStatus"/> and is not written.</summary>
    public double WriteErrorRate { get; init; }

    /// <summary>Probability (0 to 1) that a page read silently returns the data with one bit flipped.</summary>
    public double CorruptReadRate { get; init; }

    /// <summary>Probability (0 to 1) that a page write silently stores the data with one bit flipped.</summary>
    public double CorruptWriteRate { get; init; }

    /// <summary>The status an injected write error reports: <see cref="SwapIoStatus.IoError"/> (default) or <see cref="SwapIoStatus.DeviceFull"/> (a full disk).</summary>
    public SwapIoStatus WriteErrorStatus { get; init; } = SwapIoStatus.IoError;

    /// <summary>Throws <see cref="SwapConfigurationException"/> (<see cref="SwapRule.ErrorRateOutOfRange"/>) naming the first bad value.</summary>
    public void Validate()
    {
        CheckRate(ReadErrorRate, nameof(ReadErrorRate));
        CheckRate(WriteErrorRate, nameof(WriteErrorRate));
        CheckRate(CorruptReadRate, nameof(CorruptReadRate));
        CheckRate(CorruptWriteRate, nameof(CorruptWriteRate));
        if (WriteErrorStatus is not (SwapIoStatus.IoError or SwapIoStatus.DeviceFull))
        {
            throw new SwapConfigurationException(
                SwapRule.ErrorRateOutOfRange,
                $"WriteErrorStatus {WriteErrorStatus} is not an error a write can report: use IoError or DeviceFull",
                nameof(WriteErrorStatus));
        }
    }

    internal static void CheckRate(double rate, string name)
    {
        if (!(rate >= 0 && rate <= 1))
        {
            throw new SwapConfigurationException(
                SwapRule.ErrorRateOutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"{name} {rate} is out of range: a fault-injection rate is a probability from 0 to 1"),
                name);
        }
    }
}
