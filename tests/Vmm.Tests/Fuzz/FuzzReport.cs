using System.Globalization;
using System.Text;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>What a <see cref="FuzzDriver"/> run saw: inputs run, time, the outcomes' histogram and the failures.</summary>
internal sealed class FuzzReport
{
    /// <summary>Inputs whose property ran to an outcome or a failure.</summary>
    public long Inputs { get; set; }

    /// <summary>Wall-clock time of the run.</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>How many inputs ended in each outcome (a rule broken, a protocol booted, an exit reason …).</summary>
    public SortedDictionary<string, long> Outcomes { get; } = new(StringComparer.Ordinal);

    /// <summary>Inputs that broke the property (the run stops after a few).</summary>
    public List<FuzzFailure> Failures { get; } = [];

    /// <summary>Inputs per second.</summary>
    public double Rate => Inputs / Math.Max(Elapsed.TotalSeconds, 1e-9);

    /// <summary>A summary: inputs, rate and the outcomes, most frequent first.</summary>
    public string Summarize(string name)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{name}: {Inputs:N0} inputs in {Elapsed.TotalSeconds:F1} s ({Rate:N0}/s), {Failures.Count} failures");
        foreach (var (outcome, count) in Outcomes.OrderByDescending(o => o.Value))
        {
            text.AppendLine().Append(CultureInfo.InvariantCulture, $"  {count,9:N0}  {outcome}");
        }

        foreach (var failure in Failures)
        {
            text.AppendLine().Append(failure);
        }

        return text.ToString();
    }
}
