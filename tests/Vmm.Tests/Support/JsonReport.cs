using System.Text.Json;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// A <c>--json</c> document checked against docs/report-schema.md (schema <c>hv-report/1</c>): every required field
/// present with its type, every series array as long as <c>ms</c>, every table's rows as wide as its columns.
/// <see cref="Problems"/> lists what breaks the schema; empty when the document conforms.
/// </summary>
public sealed class JsonReport
{
    private readonly List<string> _problems = [];

    private JsonReport(JsonElement root)
    {
        Root = root;
        Check();
    }

    /// <summary>The series every VM has, in the schema's order.</summary>
    public static readonly IReadOnlyList<string> SeriesNames = ["resident_pages", "pages_on_swap", "ksm_merging_pages", "sptes_present", "ept_violations", "sptes_zapped"];

    /// <summary>The document's root object.</summary>
    public JsonElement Root { get; }

    /// <summary>What breaks the schema.</summary>
    public IReadOnlyList<string> Problems => _problems;

    /// <summary>The VMs.</summary>
    public IReadOnlyList<JsonElement> Vms => Root.TryGetProperty("vms", out var vms) && vms.ValueKind == JsonValueKind.Array ? [.. vms.EnumerateArray()] : [];

    /// <summary>Every table of every section.</summary>
    public IEnumerable<JsonElement> Tables => Root.GetProperty("sections").EnumerateArray().SelectMany(s => s.GetProperty("tables").EnumerateArray());

    /// <summary>Parses standard output, which must be exactly one JSON document (and whitespace).</summary>
    public static JsonReport Parse(string stdout)
    {
        using var document = JsonDocument.Parse(stdout);
        return new JsonReport(document.RootElement.Clone());
    }

    /// <summary>A top-level counter.</summary>
    public double Counter(string name) => Root.GetProperty("counters").GetProperty(name).GetDouble();

    /// <summary>The first value cell of the first table row named <paramref name="figure"/>, as a JSON element.</summary>
    public JsonElement Figure(string figure, int column = 0) =>
        Tables.Select(t => t.GetProperty("figures")).First(f => f.TryGetProperty(figure, out _)).GetProperty(figure)[column];

    private void Check()
    {
        Require(Root, "schema", JsonValueKind.String);
        if (Root.TryGetProperty("schema", out var schema) && schema.ValueKind == JsonValueKind.String && schema.GetString() != "hv-report/1")
        {
            _problems.Add($"schema is '{schema.GetString()}', not 'hv-report/1'");
        }

        Require(Root, "kind", JsonValueKind.String);
        Require(Root, "command", JsonValueKind.String);
        Require(Root, "exitCode", JsonValueKind.Number);
        RequireBoolean(Root, "succeeded");
        Require(Root, "title", JsonValueKind.String);
        Require(Root, "generatedUtc", JsonValueKind.String);
        Require(Root, "sampleIntervalMs", JsonValueKind.Number);
        Require(Root, "untrackedVms", JsonValueKind.Number);
        if (Require(Root, "counters", JsonValueKind.Object) is { } counters)
        {
            CheckCounters(counters, "counters");
        }

        if (Require(Root, "vms", JsonValueKind.Array) is { } vms)
        {
            var index = 0;
            foreach (var vm in vms.EnumerateArray())
            {
                CheckVm(vm, index++);
            }
        }

        if (Require(Root, "sections", JsonValueKind.Array) is { } sections)
        {
            foreach (var section in sections.EnumerateArray())
            {
                CheckSection(section);
            }
        }
    }

    private void CheckVm(JsonElement vm, int index)
    {
        var where = $"vms[{index}]";
        if (Require(vm, "id", JsonValueKind.Number, where) is { } id && id.GetInt32() != index)
        {
            _problems.Add($"{where}.id is {id.GetInt32()}, not {index}");
        }

        Require(vm, "label", JsonValueKind.String, where);
        if (Require(vm, "counters", JsonValueKind.Object, where) is { } counters)
        {
            CheckCounters(counters, where + ".counters");
            foreach (var name in SeriesNames)
            {
                Require(counters, name, JsonValueKind.Number, where + ".counters");
            }
        }

        if (Require(vm, "series", JsonValueKind.Object, where) is not { } series)
        {
            return;
        }

        Require(series, "stepMs", JsonValueKind.Number, where + ".series");
        if (Require(series, "ms", JsonValueKind.Array, where + ".series") is not { } ms)
        {
            return;
        }

        var length = ms.GetArrayLength();
        if (length == 0)
        {
            _problems.Add($"{where}.series.ms is empty: a tracked VM has a first sample");
        }

        var times = ms.EnumerateArray().Select(t => t.GetDouble()).ToList();
        if (times.Zip(times.Skip(1)).Any(p => p.Second < p.First))
        {
            _problems.Add($"{where}.series.ms is not monotone");
        }

        foreach (var property in series.EnumerateObject().Where(p => p.Name != "stepMs"))
        {
            if (property.Value.ValueKind != JsonValueKind.Array || property.Value.GetArrayLength() != length)
            {
                _problems.Add($"{where}.series.{property.Name} is not an array of {length} values");
                continue;
            }

            var nullable = !SeriesNames.Contains(property.Name) && property.Name != "ms";
            if (property.Value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Number && !(nullable && v.ValueKind == JsonValueKind.Null)))
            {
                _problems.Add($"{where}.series.{property.Name} holds a value that is not a number");
            }
        }

        foreach (var name in SeriesNames)
        {
            Require(series, name, JsonValueKind.Array, where + ".series");
        }
    }

    private void CheckSection(JsonElement section)
    {
        if (!section.TryGetProperty("title", out var title) || title.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
        {
            _problems.Add("a section's title is missing or neither a string nor null");
        }

        if (Require(section, "paragraphs", JsonValueKind.Array, "section") is { } paragraphs
            && paragraphs.EnumerateArray().Any(p => p.ValueKind != JsonValueKind.Array || p.EnumerateArray().Any(l => l.ValueKind != JsonValueKind.String)))
        {
            _problems.Add("a paragraph is not an array of strings");
        }

        if (Require(section, "tables", JsonValueKind.Array, "section") is not { } tables)
        {
            return;
        }

        foreach (var table in tables.EnumerateArray())
        {
            var columns = Require(table, "columns", JsonValueKind.Array, "table");
            var rows = Require(table, "rows", JsonValueKind.Array, "table");
            var figures = Require(table, "figures", JsonValueKind.Object, "table");
            if (columns is not { } c || rows is not { } r || figures is not { } f)
            {
                continue;
            }

            var width = c.GetArrayLength();
            if (r.EnumerateArray().Any(row => row.ValueKind != JsonValueKind.Array || row.GetArrayLength() != width || row.EnumerateArray().Any(cell => cell.ValueKind != JsonValueKind.String)))
            {
                _problems.Add($"a row of table ({string.Join(", ", c.EnumerateArray())}) is not {width} strings");
            }

            foreach (var figure in f.EnumerateObject())
            {
                if (figure.Value.ValueKind != JsonValueKind.Array || figure.Value.GetArrayLength() != width - 1
                    || figure.Value.EnumerateArray().Any(v => v.ValueKind is not (JsonValueKind.Number or JsonValueKind.String)))
                {
                    _problems.Add($"figure '{figure.Name}' is not {width - 1} numbers or strings");
                }
            }
        }
    }

    private void CheckCounters(JsonElement counters, string where)
    {
        foreach (var counter in counters.EnumerateObject())
        {
            if (counter.Value.ValueKind != JsonValueKind.Number)
            {
                _problems.Add($"{where}.{counter.Name} is {counter.Value.ValueKind}, not a number");
            }

            if (counter.Name != counter.Name.ToLowerInvariant() || counter.Name.Contains(' ', StringComparison.Ordinal))
            {
                _problems.Add($"{where}.{counter.Name}: counter names are lower case with underscores");
            }
        }
    }

    private JsonElement? Require(JsonElement parent, string name, JsonValueKind kind, string where = "document")
    {
        if (!parent.TryGetProperty(name, out var value))
        {
            _problems.Add($"{where}: '{name}' is missing");
            return null;
        }

        if (value.ValueKind != kind)
        {
            _problems.Add($"{where}: '{name}' is {value.ValueKind}, not {kind}");
            return null;
        }

        return value;
    }

    private void RequireBoolean(JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            _problems.Add($"document: '{name}' is missing or not a boolean");
        }
    }
}
