namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// Reads back a table written by the plain report writer: the header line, a rule of dashes whose runs give
/// the column spans, then rows until a blank line.
/// </summary>
public sealed class PlainTable
{
    private PlainTable(IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        Headers = headers;
        Rows = rows;
    }

    public IReadOnlyList<string> Headers { get; }

    public IReadOnlyList<IReadOnlyList<string>> Rows { get; }

    public string Cell(IReadOnlyList<string> row, string header) => row[IndexOf(header)];

    public IEnumerable<string> Column(string header) => Rows.Select(r => r[IndexOf(header)]);

    /// <summary>Parses the first table after the line equal to <paramref name="section"/>.</summary>
    public static PlainTable After(IReadOnlyList<string> lines, string section)
    {
        var at = lines.ToList().IndexOf(section);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), $"section '{section}' not found");
        var rule = at + 3; // section, its underline, header, rule
        while (rule < lines.Count && !lines[rule].StartsWith('-'))
        {
            rule++;
        }

        var spans = Spans(lines[rule]);
        var headers = Slice(lines[rule - 1], spans);
        var rows = new List<IReadOnlyList<string>>();
        for (var i = rule + 1; i < lines.Count && lines[i].Length > 0; i++)
        {
            rows.Add(Slice(lines[i], spans));
        }

        return new PlainTable(headers, rows);
    }

    private int IndexOf(string header)
    {
        var index = Headers.ToList().IndexOf(header);
        Assert.That(index, Is.GreaterThanOrEqualTo(0), $"column '{header}' not found in {string.Join(", ", Headers)}");
        return index;
    }

    private static List<(int Start, int Length)> Spans(string rule)
    {
        var spans = new List<(int, int)>();
        for (var i = 0; i < rule.Length;)
        {
            if (rule[i] != '-')
            {
                i++;
                continue;
            }

            var start = i;
            while (i < rule.Length && rule[i] == '-')
            {
                i++;
            }

            spans.Add((start, i - start));
        }

        return spans;
    }

    private static List<string> Slice(string line, List<(int Start, int Length)> spans) =>
        spans.Select(s => s.Start >= line.Length ? string.Empty : line.Substring(s.Start, Math.Min(s.Length, line.Length - s.Start)).Trim()).ToList();
}
