using System.Text.Json;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>
/// A Chrome trace-event file (JSON Object Format) read back and checked against the format's rules: the fields each
/// phase needs, spans that nest on each (pid, tid) track, timestamps in order per track, B/E balanced, and a name
/// for every process and thread used. <see cref="Problems"/> lists every rule broken.
/// </summary>
internal sealed class TraceFile
{
    private const double Tolerance = 0.0015;

    private TraceFile(JsonElement root, List<JsonElement> events, List<string> problems)
    {
        Root = root;
        Events = events;
        Problems = problems;
    }

    public JsonElement Root { get; }

    public IReadOnlyList<JsonElement> Events { get; }

    public IReadOnlyList<string> Problems { get; }

    public long Dropped => Root.GetProperty("otherData").GetProperty("dropped").GetInt64();

    public long Recorded => Root.GetProperty("otherData").GetProperty("recorded").GetInt64();

    public IEnumerable<JsonElement> Named(string name) => Events.Where(e => e.GetProperty("name").GetString() == name);

    public IEnumerable<JsonElement> Phase(string phase) => Events.Where(e => e.GetProperty("ph").GetString() == phase);

    public static TraceFile Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var root = document.RootElement.Clone();
        var problems = new List<string>();
        var events = root.GetProperty("traceEvents").EnumerateArray().ToList();
        if (!root.TryGetProperty("displayTimeUnit", out var unit) || unit.GetString() is not ("ns" or "ms"))
        {
            problems.Add("displayTimeUnit missing or not ns/ms");
        }

        if (!root.TryGetProperty("otherData", out var other) || !other.TryGetProperty("dropped", out _))
        {
            problems.Add("otherData.dropped missing");
        }

        var processNames = new HashSet<int>();
        var threadNames = new HashSet<(int, int)>();
        var used = new HashSet<(int, int)>();
        var lastTs = new Dictionary<(int, int), double>();
        var open = new Dictionary<(int, int), Stack<double>>();
        var beginDepth = new Dictionary<(int, int), int>();
        foreach (var e in events)
        {
            var ph = Has(e, "ph", JsonValueKind.String, problems) ? e.GetProperty("ph").GetString()! : "?";
            foreach (var field in new[] { "name" })
            {
                Has(e, field, JsonValueKind.String, problems);
            }

            Has(e, "pid", JsonValueKind.Number, problems);
            Has(e, "tid", JsonValueKind.Number, problems);
            if (ph == "M")
            {
                var name = e.GetProperty("name").GetString();
                var args = e.GetProperty("args");
                if (name == "process_name" && args.TryGetProperty("name", out _))
                {
                    processNames.Add(e.GetProperty("pid").GetInt32());
                }
                else if (name == "thread_name" && args.TryGetProperty("name", out _))
                {
                    threadNames.Add((e.GetProperty("pid").GetInt32(), e.GetProperty("tid").GetInt32()));
                }

                continue;
            }

            Has(e, "cat", JsonValueKind.String, problems);
            Has(e, "ts", JsonValueKind.Number, problems);
            Has(e, "args", JsonValueKind.Object, problems);
            var track = (e.GetProperty("pid").GetInt32(), e.GetProperty("tid").GetInt32());
            used.Add(track);
            var ts = e.GetProperty("ts").GetDouble();
            if (lastTs.TryGetValue(track, out var last) && ts < last)
            {
                problems.Add($"track {track}: ts {ts} after {last}");
            }

            lastTs[track] = ts;
            var stack = open.TryGetValue(track, out var s) ? s : open[track] = new Stack<double>();
            while (stack.Count > 0 && stack.Peek() <= ts + Tolerance)
            {
                stack.Pop();
            }

            switch (ph)
            {
                case "X":
                    if (Has(e, "dur", JsonValueKind.Number, problems))
                    {
                        var end = ts + e.GetProperty("dur").GetDouble();
                        if (e.GetProperty("dur").GetDouble() < 0)
                        {
                            problems.Add($"negative dur: {e}");
                        }

                        if (stack.Count > 0 && end > stack.Peek() + Tolerance)
                        {
                            problems.Add($"track {track}: {e.GetProperty("name")} [{ts}, {end}] overlaps its enclosing span ending {stack.Peek()}");
                        }

                        stack.Push(end);
                    }

                    break;
                case "B":
                    beginDepth[track] = beginDepth.GetValueOrDefault(track) + 1;
                    break;
                case "E":
                    beginDepth[track] = beginDepth.GetValueOrDefault(track) - 1;
                    if (beginDepth[track] < 0)
                    {
                        problems.Add($"track {track}: E without B");
                    }

                    break;
                case "i":
                case "I":
                    break;
                case "C":
                    if (!e.GetProperty("args").EnumerateObject().Any() || e.GetProperty("args").EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.Number))
                    {
                        problems.Add($"counter without numeric series: {e}");
                    }

                    break;
                default:
                    problems.Add($"unexpected phase {ph}");
                    break;
            }
        }

        problems.AddRange(beginDepth.Where(d => d.Value != 0).Select(d => $"track {d.Key}: {d.Value} B without E"));
        problems.AddRange(used.Where(t => !threadNames.Contains(t)).Select(t => $"track {t} has no thread_name"));
        problems.AddRange(used.Select(t => t.Item1).Distinct().Where(p => !processNames.Contains(p)).Select(p => $"pid {p} has no process_name"));
        return new TraceFile(root, events, problems);
    }

    private static bool Has(JsonElement e, string field, JsonValueKind kind, List<string> problems)
    {
        if (e.TryGetProperty(field, out var value) && value.ValueKind == kind)
        {
            return true;
        }

        problems.Add($"event without {kind} '{field}': {e}");
        return false;
    }
}
