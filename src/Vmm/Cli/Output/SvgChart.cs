using System.Globalization;
using System.Net;
using System.Text;

namespace Hypervisor.Vmm.Cli.Output;

/// <summary>
/// A line chart as inline SVG, rendered on the server (no script): axes from 0 with round ticks, one polyline per
/// <see cref="ChartLine"/>, a legend. Lines without points are left out of the plot and marked "(none)" in the legend.
/// </summary>
internal static class SvgChart
{
    private const double Width = 720;
    private const double Height = 250;
    private const double Left = 72;
    private const double Right = 16;
    private const double Top = 46;
    private const double Bottom = 36;

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Appends the chart's <c>&lt;svg class="chart"&gt;</c> element.</summary>
    /// <param name="html">Where it goes.</param>
    /// <param name="title">The chart's title (also its accessible name).</param>
    /// <param name="xLabel">The x axis's label.</param>
    /// <param name="lines">The lines.</param>
    /// <param name="kind">The chart's <c>data-chart</c> attribute (what it plots).</param>
    public static void Write(StringBuilder html, string title, string xLabel, IReadOnlyList<ChartLine> lines, string kind)
    {
        ArgumentNullException.ThrowIfNull(html);
        ArgumentNullException.ThrowIfNull(lines);
        var points = lines.SelectMany(l => l.Points).ToList();
        var xMax = NiceCeiling(points.Count == 0 ? 1 : points.Max(p => p.X));
        var yMax = NiceCeiling(points.Count == 0 ? 1 : points.Max(p => p.Y));
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        double X(double x) => Left + (x / xMax * plotWidth);
        double Y(double y) => Top + plotHeight - (y / yMax * plotHeight);

        html.Append(C, $"<svg class=\"chart\" data-chart=\"{Encode(kind)}\" viewBox=\"0 0 {Width} {Height}\" width=\"{Width}\" height=\"{Height}\" role=\"img\" aria-label=\"{Encode(title)}\">");
        html.Append(C, $"<title>{Encode(title)}</title>");
        html.Append(C, $"<text class=\"chart-title\" x=\"{Left}\" y=\"16\">{Encode(title)}</text>");

        // Legend, left to right under the title.
        var legendX = Left;
        foreach (var line in lines)
        {
            var name = line.Points.Count == 0 ? line.Name + " (none)" : line.Name;
            html.Append(C, $"<rect x=\"{F(legendX)}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{line.Colour}\"/>");
            html.Append(C, $"<text class=\"legend\" x=\"{F(legendX + 14)}\" y=\"35\">{Encode(name)}</text>");
            legendX += 24 + (name.Length * 6.5);
        }

        // Grid and ticks: five steps on each axis.
        for (var i = 0; i <= 5; i++)
        {
            var y = yMax * i / 5;
            html.Append(C, $"<line class=\"grid\" x1=\"{Left}\" y1=\"{F(Y(y))}\" x2=\"{Width - Right}\" y2=\"{F(Y(y))}\"/>");
            html.Append(C, $"<text class=\"tick\" x=\"{Left - 6}\" y=\"{F(Y(y) + 4)}\" text-anchor=\"end\">{Tick(y)}</text>");
            var x = xMax * i / 5;
            html.Append(C, $"<text class=\"tick\" x=\"{F(X(x))}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\">{Tick(x)}</text>");
        }

        html.Append(C, $"<line class=\"axis\" x1=\"{Left}\" y1=\"{Top + plotHeight}\" x2=\"{Width - Right}\" y2=\"{Top + plotHeight}\"/>");
        html.Append(C, $"<line class=\"axis\" x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Top + plotHeight}\"/>");
        html.Append(C, $"<text class=\"axis-label\" x=\"{F(Left + (plotWidth / 2))}\" y=\"{Height - 4}\" text-anchor=\"middle\">{Encode(xLabel)}</text>");
        foreach (var line in lines.Where(l => l.Points.Count > 0))
        {
            if (line.Points.Count == 1)
            {
                html.Append(C, $"<circle class=\"series\" data-series=\"{Encode(line.Name)}\" cx=\"{F(X(line.Points[0].X))}\" cy=\"{F(Y(line.Points[0].Y))}\" r=\"2.5\" fill=\"{line.Colour}\"/>");
                continue;
            }

            html.Append(C, $"<polyline class=\"series\" data-series=\"{Encode(line.Name)}\" fill=\"none\" stroke=\"{line.Colour}\" stroke-width=\"1.5\"{(line.Dashed ? " stroke-dasharray=\"5 3\"" : string.Empty)} points=\"");
            foreach (var (x, y) in line.Points)
            {
                html.Append(C, $"{F(X(x))},{F(Y(y))} ");
            }

            html.Append("\"/>");
        }

        html.Append("</svg>");
    }

    /// <summary>The smallest of 1, 2, 2.5 or 5 times a power of ten at or above <paramref name="value"/> (1 for 0).</summary>
    internal static double NiceCeiling(double value)
    {
        if (value <= 0 || !double.IsFinite(value))
        {
            return 1;
        }

        var power = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var step in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (step * power >= value * (1 - 1e-9))
            {
                return step * power;
            }
        }

        return 10 * power;
    }

    private static string Tick(double value) => value switch
    {
        >= 10_000_000 => (value / 1_000_000).ToString("0.#", C) + "M",
        >= 10_000 => (value / 1_000).ToString("0.#", C) + "k",
        _ => value.ToString("0.##", C),
    };

    private static string F(double value) => value.ToString("0.#", C);

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
