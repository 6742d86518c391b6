namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The command-line names of <see cref="StressMechanismKind"/>: kebab-case (<c>thp-split</c>), and on input any spelling
/// that differs from the enum name only in case, hyphens or underscores (<c>ThpSplit</c>, <c>thp_split</c>).
/// </summary>
public static class StressMechanismNames
{
    /// <summary>The kebab-case name of <paramref name="kind"/>: <c>ThpSplit</c> is <c>thp-split</c>.</summary>
    public static string Of(StressMechanismKind kind)
    {
        var name = kind.ToString();
        var builder = new System.Text.StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('-');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }

    /// <summary>
    /// The kind <paramref name="text"/> names, or false when it names none. Case, hyphens and underscores are ignored, so
    /// <c>thp-split</c>, <c>ThpSplit</c> and <c>THP_SPLIT</c> all name <see cref="StressMechanismKind.ThpSplit"/>.
    /// </summary>
    public static bool TryParse(string text, out StressMechanismKind kind)
    {
        var key = Normalise(text);
        foreach (var candidate in Enum.GetValues<StressMechanismKind>())
        {
            if (key.Length > 0 && key == Normalise(candidate.ToString()))
            {
                kind = candidate;
                return true;
            }
        }

        kind = default;
        return false;
    }

    private static string Normalise(string text) =>
        string.Concat(text.Where(c => c is not ('-' or '_')).Select(char.ToLowerInvariant));
}
