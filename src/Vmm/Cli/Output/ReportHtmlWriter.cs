using System.Globalization;
using System.Net;
using System.Text;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// Writes a <see cref="ReportSession"/> as one self-contained HTML page: inline CSS, inline SVG charts rendered here,
/// one small inline script that only counts the charts, and no reference to anything outside the file. The markup is
/// also well-formed XML (void elements closed, text encoded), so tests and tools can parse it without an HTML parser. Per VM two
/// charts over the run: its resident, swapped and KSM-merged pages and present sptes; its EPT violations and sptes
/// zapped per second. Then the report's sections, tables and paragraphs as the text report has them.
/// </summary>
internal static class ReportHtmlWriter
{
    private const string Style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:16px 24px}header h1{font-size:20px;margin:0 0 6px}
        .meta{margin:0;color:#c9d1e0;font-size:13px}code{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
        main{padding:8px 24px 32px;max-width:1200px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d5d9e0}
        h3{font-size:15px;margin:16px 0 6px}article.vm{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:8px 14px;margin:12px 0}
        .charts{display:flex;flex-wrap:wrap;gap:8px}svg.chart{max-width:100%;height:auto;background:#fff}
        svg .grid{stroke:#e4e7ec;stroke-width:1}svg .axis{stroke:#555;stroke-width:1}svg text{font:11px system-ui,sans-serif;fill:#333}
        svg .chart-title{font-size:13px;font-weight:600}table{border-collapse:collapse;background:#fff;margin:8px 0 12px}
        th,td{border:1px solid #d5d9e0;padding:3px 8px;vertical-align:top;text-align:left}th{background:#eef0f4}
        td.num,th.num{text-align:right;white-space:nowrap}tr.emphasis td{font-weight:600;color:#0b5f7a}p{margin:6px 0 10px;max-width:100ch}
        """;

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    // Present sptes usually equal resident pages: dashed, so both show.
    private static readonly (string Name, string Colour, bool Dashed, Func<CounterSample, long> Value)[] PageLines =
    [
        ("resident pages", "#1f77b4", false, s => s.Resident),
        ("pages on swap", "#d62728", false, s => s.Swapped),
        ("ksm_merging_pages", "#2ca02c", false, s => s.Merged),
        ("sptes present", "#9467bd", true, s => s.Sptes),
    ];

    /// <summary>Writes the page.</summary>
    public static void Write(TextWriter output, ReportSession session, int exitCode, IReadOnlyList<CounterSeries> series)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(session);
        var html = new StringBuilder();
        var title = session.Document.Title ?? session.Command;
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
        html.Append(C, $"<meta name=\"generator\" content=\"hv {ReportSession.Schema}\"/>\n<title>{E(title)}</title>\n<style>\n{Style}</style>\n</head>\n<body>\n");
        html.Append(C, $"<header><h1>{E(title)}</h1><p class=\"meta\">kind <code>{E(session.Kind)}</code> · exit status {exitCode} · <code>{E(session.Command)}</code> · schema {ReportSession.Schema}</p></header>\n<main>\n");
        WriteCharts(html, session, series);
        html.Append("<section id=\"report\">\n<h2>Report</h2>\n");
        foreach (var section in session.Document.Sections)
        {
            if (section.Title is not null)
            {
                html.Append(C, $"<h3>{E(section.Title)}</h3>\n");
            }

            foreach (var block in section.Blocks)
            {
                if (block.Table is { } table)
                {
                    WriteTable(html, table);
                }
                else
                {
                    html.Append("<p>").Append(string.Join("<br/>", block.Lines!.Select(E))).Append("</p>\n");
                }
            }
        }

        html.Append("</section>\n</main>\n");

        // The page's only script: it counts the charts the browser parsed as SVG, into the charts section's line.
        html.Append("<script>(function(){var n=document.querySelectorAll('svg.chart').length;var e=document.getElementById('chart-count');if(e){e.textContent=n+' charts rendered';}document.documentElement.setAttribute('data-charts',String(n));})();</script>\n");
        html.Append("</body>\n</html>\n");
        output.Write(html.ToString());
    }

    private static void WriteCharts(StringBuilder html, ReportSession session, IReadOnlyList<CounterSeries> series)
    {
        html.Append("<section id=\"charts\">\n<h2>Counters over time</h2>\n");
        if (series.Count == 0)
        {
            html.Append("<p>No VM was sampled in this command (a bench builds none; a run under --accel kvm is not sampled): nothing to chart. <span id=\"chart-count\"></span></p>\n</section>\n");
            return;
        }

        var untracked = session.History.UntrackedVms > 0
            ? string.Create(C, $" {session.History.UntrackedVms} later VM(s) were not charted (at most {CounterHistory.MaxVms}).")
            : string.Empty;
        html.Append(C, $"<p>Each VM the command built, sampled every {session.History.Interval.TotalMilliseconds:0.#} ms from its start to its teardown (a long run keeps fewer, evenly spaced samples). {E(untracked)} <span id=\"chart-count\"></span></p>\n");
        foreach (var vm in series)
        {
            html.Append(C, $"<article class=\"vm\" id=\"vm-{vm.Id}\" data-vm=\"{vm.Id}\">\n<h3>{E(vm.Label)}</h3>\n<div class=\"charts\">");
            // Time from the VM's first sample: a demo's later phases start late in the command.
            var origin = vm.Samples.Count > 0 ? vm.Samples[0].Milliseconds : 0;
            var axis = string.Create(C, $"seconds since the VM was built ({origin / 1000:0.0} s into the command)");
            var pages = PageLines
                .Where(l => l.Name != "ksm_merging_pages" || vm.Samples.Any(s => s.Merged > 0))
                .Select(l => new ChartLine(l.Name, l.Colour, vm.Samples.Select(s => ((s.Milliseconds - origin) / 1000, (double)l.Value(s))).ToList(), l.Dashed))
                .ToList();
            if (vm.WatchedName is { } watched)
            {
                pages.Add(new ChartLine(watched, "#e377c2", vm.Samples.Where(s => s.Watched >= 0).Select(s => ((s.Milliseconds - origin) / 1000, (double)s.Watched)).ToList()));
            }

            SvgChart.Write(html, "pages (4 KiB)", axis, pages, "pages");
            ChartLine[] rates =
            [
                new("EPT violations per second", "#ff7f0e", Rate(vm.Samples, origin, s => s.Faults)),
                new("sptes zapped per second", "#8c564b", Rate(vm.Samples, origin, s => s.Zapped)),
            ];
            SvgChart.Write(html, "EPT violations and zaps per second", axis, rates, "rates");
            html.Append("</div>\n");
            var last = vm.Samples.Count > 0 ? vm.Samples[^1] : default;
            var watchedEnd = vm.WatchedName is { } name ? string.Create(C, $", {last.Watched:N0} {name}") : string.Empty;
            html.Append(C, $"<p>At the end: {last.Resident:N0} resident, {last.Swapped:N0} on swap, {last.Merged:N0} merged, {last.Sptes:N0} sptes present{E(watchedEnd)}; {last.Faults:N0} EPT violations and {last.Zapped:N0} sptes zapped in all; {vm.Samples.Count:N0} samples, {vm.Step.TotalMilliseconds:0.#} ms apart.</p>\n</article>\n");
        }

        html.Append("</section>\n");
    }

    /// <summary>Events per second between consecutive samples, at the later one's time; gaps under a millisecond (a VM's last sample right after a tick) are folded into the next.</summary>
    private static List<(double X, double Y)> Rate(IReadOnlyList<CounterSample> samples, double origin, Func<CounterSample, long> counter)
    {
        var points = new List<(double, double)>();
        var from = 0;
        for (var i = 1; i < samples.Count; i++)
        {
            var milliseconds = samples[i].Milliseconds - samples[from].Milliseconds;
            if (milliseconds < 1)
            {
                continue;
            }

            points.Add(((samples[i].Milliseconds - origin) / 1000, (counter(samples[i]) - counter(samples[from])) * 1000.0 / milliseconds));
            from = i;
        }

        return points;
    }

    private static void WriteTable(StringBuilder html, ReportTable table)
    {
        html.Append("<table class=\"report\">\n<thead><tr>");
        foreach (var column in table.Columns)
        {
            html.Append(column.AlignRight ? "<th class=\"num\">" : "<th>").Append(E(column.Header)).Append("</th>");
        }

        html.Append("</tr></thead>\n<tbody>\n");
        foreach (var row in table.Rows)
        {
            html.Append(row.Emphasis ? "<tr class=\"emphasis\">" : "<tr>");
            for (var i = 0; i < row.Cells.Count; i++)
            {
                html.Append(table.Columns[i].AlignRight ? "<td class=\"num\">" : "<td>").Append(E(row.Cells[i])).Append("</td>");
            }

            html.Append("</tr>\n");
        }

        html.Append("</tbody>\n</table>\n");
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
