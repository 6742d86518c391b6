using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// Writes a <see cref="TraceRecorder"/>'s events as a Chrome trace-event file in the JSON Object Format
/// (<c>{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}</c>), which Perfetto and chrome://tracing
/// open: spans as <c>"X"</c> events with <c>dur</c>, instants as <c>"i"</c>, counter samples as <c>"C"</c>, and
/// <c>"M"</c> <c>process_name</c>/<c>thread_name</c> metadata for every process and (process, thread) track used.
/// Timestamps are microseconds since the recorder's origin with nanosecond precision, sorted, so each track's
/// events are in time order and a span precedes the spans it contains.
/// </summary>
public static class ChromeTraceWriter
{
    /// <summary>Writes <paramref name="recorder"/>'s events to <paramref name="stream"/>.</summary>
    /// <param name="stream">Where the JSON goes (left open).</param>
    /// <param name="recorder">The run's recorder.</param>
    /// <param name="otherData">Extra string fields for <c>otherData</c> (the command, the image …), or null.</param>
    /// <returns>The snapshot that was written (its dropped count is in <c>otherData.dropped</c>).</returns>
    public static TraceSnapshot Write(Stream stream, TraceRecorder recorder, IReadOnlyDictionary<string, string>? otherData = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(recorder);
        var snapshot = recorder.Snapshot();
        var events = snapshot.Events;
        var nanos = new long[events.Count];
        var order = new int[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            nanos[i] = NanosecondsSince(recorder.Origin, events[i].Timestamp);
            order[i] = i;
        }

        // Start time, then the longer span first (an enclosing span before the ones it contains), then record order.
        Array.Sort(order, (a, b) =>
        {
            var byTime = nanos[a].CompareTo(nanos[b]);
            if (byTime != 0)
            {
                return byTime;
            }

            var byLength = events[b].Duration.CompareTo(events[a].Duration);
            return byLength != 0 ? byLength : a.CompareTo(b);
        });

        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false, SkipValidation = false });
        json.WriteStartObject();
        json.WriteStartArray("traceEvents");
        WriteMetadata(json, recorder, events);
        Span<char> hex = stackalloc char[18];
        foreach (var index in order)
        {
            var item = events[index];
            var type = item.Type;
            json.WriteStartObject();
            json.WriteString("name", type.Name);
            json.WriteString("cat", type.Category);
            json.WriteString("ph", type.Phase switch { TracePhase.Complete => "X", TracePhase.Instant => "i", _ => "C" });
            json.WriteNumber("ts", nanos[index] / 1000.0);
            if (type.Phase == TracePhase.Complete)
            {
                var end = NanosecondsSince(recorder.Origin, item.Timestamp + item.Duration);
                json.WriteNumber("dur", Math.Max(0, end - nanos[index]) / 1000.0);
            }
            else if (type.Phase == TracePhase.Instant)
            {
                json.WriteString("s", "t");
            }

            json.WriteNumber("pid", item.Pid);
            json.WriteNumber("tid", item.Tid);
            json.WriteStartObject("args");
            for (var a = 0; a < type.ArgNames.Count; a++)
            {
                var value = a switch { 0 => item.Arg0, 1 => item.Arg1, _ => item.Arg2 };
                if ((type.HexMask & (1 << a)) != 0)
                {
                    hex[0] = '0';
                    hex[1] = 'x';
                    ((ulong)value).TryFormat(hex[2..], out var written, "x", CultureInfo.InvariantCulture);
                    json.WriteString(type.ArgNames[a], hex[..(2 + written)]);
                }
                else
                {
                    json.WriteNumber(type.ArgNames[a], value);
                }
            }

            for (var t = 0; t < type.TextNames.Count; t++)
            {
                json.WriteString(type.TextNames[t], (t == 0 ? item.Text0 : item.Text1) ?? string.Empty);
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteString("displayTimeUnit", "ns");
        json.WriteStartObject("otherData");
        json.WriteString("producer", "hv");
        json.WriteNumber("capacity", snapshot.Capacity);
        json.WriteNumber("recorded", snapshot.Recorded);
        json.WriteNumber("dropped", snapshot.Dropped);
        foreach (var (key, value) in otherData ?? new Dictionary<string, string>())
        {
            json.WriteString(key, value);
        }

        json.WriteEndObject();
        json.WriteEndObject();
        json.Flush();
        return snapshot;
    }

    private static long NanosecondsSince(long origin, long timestamp) =>
        timestamp <= origin ? 0 : (long)Math.Round((timestamp - origin) * (1e9 / Stopwatch.Frequency));

    private static void WriteMetadata(Utf8JsonWriter json, TraceRecorder recorder, IReadOnlyList<TraceEvent> events)
    {
        var pids = new SortedSet<int>(recorder.ProcessNames.Keys);
        var tracks = new SortedSet<(int Pid, int Tid)>();
        foreach (var item in events)
        {
            pids.Add(item.Pid);
            tracks.Add((item.Pid, item.Tid));
        }

        foreach (var pid in pids)
        {
            var name = recorder.ProcessNames.TryGetValue(pid, out var given) ? given : string.Create(CultureInfo.InvariantCulture, $"process {pid}");
            WriteMetadataEvent(json, "process_name", pid, 0, name);
            json.WriteStartObject();
            json.WriteString("name", "process_sort_index");
            json.WriteString("cat", "__metadata");
            json.WriteString("ph", "M");
            json.WriteNumber("ts", 0);
            json.WriteNumber("pid", pid);
            json.WriteNumber("tid", 0);
            json.WriteStartObject("args");
            json.WriteNumber("sort_index", pid);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        foreach (var (pid, tid) in tracks)
        {
            var name = recorder.ThreadNames.TryGetValue(tid, out var given) ? given : string.Create(CultureInfo.InvariantCulture, $"thread {tid}");
            WriteMetadataEvent(json, "thread_name", pid, tid, name);
        }
    }

    private static void WriteMetadataEvent(Utf8JsonWriter json, string name, int pid, int tid, string value)
    {
        json.WriteStartObject();
        json.WriteString("name", name);
        json.WriteString("cat", "__metadata");
        json.WriteString("ph", "M");
        json.WriteNumber("ts", 0);
        json.WriteNumber("pid", pid);
        json.WriteNumber("tid", tid);
        json.WriteStartObject("args");
        json.WriteString("name", value);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
