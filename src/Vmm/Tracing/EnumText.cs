namespace Hypervisor.Vmm.Tracing;

/// <summary>The names of <typeparamref name="T"/>'s values, made once, so that a trace records an enum's name without allocating.</summary>
/// <typeparam name="T">An enum.</typeparam>
public static class EnumText<T>
    where T : struct, Enum
{
    private static readonly Dictionary<T, string> Names = Enum.GetValues<T>().Distinct().ToDictionary(v => v, v => v.ToString());

    /// <summary>The name of <paramref name="value"/> (a combination or an unnamed value is formatted, which allocates).</summary>
    public static string Of(T value) => Names.TryGetValue(value, out var name) ? name : value.ToString();
}
