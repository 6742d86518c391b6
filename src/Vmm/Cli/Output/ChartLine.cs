namespace Hypervisor.Vmm.Cli.Output;

/// <summary>One line of an <see cref="SvgChart"/>.</summary>
/// <param name="Name">The legend's name, and the polyline's <c>data-series</c>.</param>
/// <param name="Colour">A CSS colour.</param>
/// <param name="Points">(x, y) points in x order.</param>
/// <param name="Dashed">True to dash the line (one that often lies on another).</param>
internal sealed record ChartLine(string Name, string Colour, IReadOnlyList<(double X, double Y)> Points, bool Dashed = false);
