using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// Writes a <see cref="ReportSession"/> as one JSON document of schema <see cref="ReportSession.Schema"/>
/// (docs/report-schema.md): the command, its exit code, its counters, one entry per VM with its counters and its
/// sampled series, and the report's sections with their paragraphs and tables (each table's cells as the text shows
/// them, and its figures with numbers as numbers).
/// </summary>
internal static partial class ReportJsonWriter
{
    /// <summary>The series' names in the document, in order: the text reports' figure names, lower-cased with underscores.</summary>
    public static readonly IReadOnlyList<string> SeriesNames = ["resident_pages", "pages_on_swap", "ksm_merging_pages", "sptes_present", "ept_violations", "sptes_zapped"];

    /// <summary>Writes the document, then a newline, to <paramref name="output"/>.</summary>
    public static void Write(TextWriter output, ReportSession session, int exitCode, IReadOnlyList<CounterSeries> series)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(session);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("schema", ReportSession.Schema);
            json.WriteString("kind", session.Kind);
            json.WriteString("command", session.Command);
            json.WriteNumber("exitCode", exitCode);
            json.WriteBoolean("succeeded", exitCode == ExitCodes.Success);
            json.WriteString("title", session.Document.Title);
            json.WriteString("generatedUtc", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
            json.WriteStartObject("counters");
            WriteCounters(json, session.Counters);
            json.WriteEndObject();
            json.WriteNumber("sampleIntervalMs", session.History.Interval.TotalMilliseconds);
            json.WriteNumber("untrackedVms", session.History.UntrackedVms);
            json.WriteStartArray("vms");
            foreach (var vm in series)
            {
                WriteVm(json, vm, session.VmCounters(vm.Id));
            }

            json.WriteEndArray();
            json.WriteStartArray("sections");
            foreach (var section in session.Document.Sections.Where(s => s.Title is not null || s.Blocks.Count > 0))
            {
                WriteSection(json, section);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }

    /// <summary>A cell's number when the whole cell is one (<c>1,024</c>, <c>-3</c>, <c>0.25</c>); null otherwise (units, words, ratios).</summary>
    internal static double? Number(string cell)
    {
        if (!NumberPattern().IsMatch(cell))
        {
            return null;
        }

        return double.Parse(cell.Replace(",", string.Empty, StringComparison.Ordinal), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
    }

    /// <summary>The last sample's values, under <see cref="SeriesNames"/>.</summary>
    internal static IEnumerable<ReportCounter> Final(CounterSeries vm)
    {
        if (vm.Samples.Count == 0)
        {
            yield break;
        }

        var last = vm.Samples[^1];
        long[] values = [last.Resident, last.Swapped, last.Merged, last.Sptes, last.Faults, last.Zapped];
        for (var i = 0; i < values.Length; i++)
        {
            yield return new ReportCounter(SeriesNames[i], values[i]);
        }

        if (vm.WatchedName is { } watched)
        {
            yield return new ReportCounter(Key(watched), last.Watched);
        }
    }

    /// <summary>A figure's name as a JSON key: lower-cased, spaces and hyphens as underscores (Linux's names stay as they are).</summary>
    internal static string Key(string figure) =>
        figure.Trim().ToLowerInvariant().Replace(' ', '_').Replace('-', '_');

    private static void WriteVm(Utf8JsonWriter json, CounterSeries vm, IReadOnlyList<ReportCounter> typed)
    {
        json.WriteStartObject();
        json.WriteNumber("id", vm.Id);
        json.WriteString("label", vm.Label);
        json.WriteStartObject("counters");

        // The command's own figures first; the sampler's last values fill in the names it did not give.
        var named = typed.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        WriteCounters(json, [.. typed, .. Final(vm).Where(c => !named.Contains(c.Name))]);
        json.WriteEndObject();
        json.WriteStartObject("series");
        json.WriteNumber("stepMs", vm.Step.TotalMilliseconds);
        json.WriteStartArray("ms");
        foreach (var sample in vm.Samples)
        {
            json.WriteNumberValue(Math.Round(sample.Milliseconds, 1));
        }

        json.WriteEndArray();
        Func<CounterSample, long>[] columns = [s => s.Resident, s => s.Swapped, s => s.Merged, s => s.Sptes, s => s.Faults, s => s.Zapped];
        for (var i = 0; i < columns.Length; i++)
        {
            json.WriteStartArray(SeriesNames[i]);
            foreach (var sample in vm.Samples)
            {
                json.WriteNumberValue(columns[i](sample));
            }

            json.WriteEndArray();
        }

        if (vm.WatchedName is { } watched)
        {
            json.WriteStartArray(Key(watched));
            foreach (var sample in vm.Samples)
            {
                // null before the figure was watched.
                if (sample.Watched < 0)
                {
                    json.WriteNullValue();
                }
                else
                {
                    json.WriteNumberValue(sample.Watched);
                }
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteSection(Utf8JsonWriter json, ReportSection section)
    {
        json.WriteStartObject();
        if (section.Title is null)
        {
            json.WriteNull("title");
        }
        else
        {
            json.WriteString("title", section.Title);
        }

        json.WriteStartArray("paragraphs");
        foreach (var lines in section.Blocks.Select(b => b.Lines).OfType<IReadOnlyList<string>>())
        {
            json.WriteStartArray();
            foreach (var line in lines)
            {
                json.WriteStringValue(line);
            }

            json.WriteEndArray();
        }

        json.WriteEndArray();
        json.WriteStartArray("tables");
        foreach (var table in section.Blocks.Select(b => b.Table).OfType<ReportTable>())
        {
            WriteTable(json, table);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteTable(Utf8JsonWriter json, ReportTable table)
    {
        json.WriteStartObject();
        json.WriteStartArray("columns");
        foreach (var column in table.Columns)
        {
            json.WriteStringValue(column.Header);
        }

        json.WriteEndArray();
        json.WriteStartArray("rows");
        foreach (var row in table.Rows)
        {
            json.WriteStartArray();
            foreach (var cell in row.Cells)
            {
                json.WriteStringValue(cell);
            }

            json.WriteEndArray();
        }

        json.WriteEndArray();

        // Each row under its first cell (the first row of a name wins), its other cells as numbers where they are one.
        json.WriteStartObject("figures");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in table.Rows.Where(r => r.Cells[0].Length > 0 && seen.Add(r.Cells[0])))
        {
            json.WriteStartArray(row.Cells[0]);
            foreach (var cell in row.Cells.Skip(1))
            {
                if (Number(cell) is { } value)
                {
                    WriteNumberValue(json, value);
                }
                else
                {
                    json.WriteStringValue(cell);
                }
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteCounters(Utf8JsonWriter json, IEnumerable<ReportCounter> counters)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var counter in counters.Where(c => seen.Add(c.Name)))
        {
            json.WritePropertyName(counter.Name);
            WriteNumberValue(json, counter.Value);
        }
    }

    private static void WriteNumberValue(Utf8JsonWriter json, double value)
    {
        if (Math.Abs(value) < 9e15 && value == Math.Floor(value))
        {
            json.WriteNumberValue((long)value);
        }
        else if (double.IsFinite(value))
        {
            json.WriteNumberValue(value);
        }
        else
        {
            json.WriteNullValue();
        }
    }

    [GeneratedRegex(@"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex NumberPattern();
}
