using Spectre.Console;

namespace Hypervisor.Vmm.Cli.Output;

/// <summary>Terminal output through Spectre.Console: rules for headings, bordered tables. All text is escaped.</summary>
internal sealed class SpectreReportWriter : ReportWriter
{
    private readonly IAnsiConsole _console;

    /// <summary>Creates a writer on <paramref name="output"/>, detecting colour and width from the terminal.</summary>
    public SpectreReportWriter(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
    }

    /// <inheritdoc />
    public override void Title(string text)
    {
        _console.Write(new Rule($"[bold]{Markup.Escape(text)}[/]").LeftJustified());
        _console.WriteLine();
    }

    /// <inheritdoc />
    public override void Section(string text) =>
        _console.Write(new Rule($"[bold yellow]{Markup.Escape(text)}[/]").LeftJustified());

    /// <inheritdoc />
    public override void Paragraph(params string[] lines)
    {
        foreach (var line in lines)
        {
            _console.WriteLine(line);
        }

        _console.WriteLine();
    }

    /// <inheritdoc />
    public override void Table(ReportTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        var rendered = new Table().Border(TableBorder.Rounded);
        foreach (var column in table.Columns)
        {
            var header = new TableColumn($"[bold]{Markup.Escape(column.Header)}[/]") { NoWrap = !column.Wrap };
            rendered.AddColumn(column.AlignRight ? header.RightAligned() : header);
        }

        foreach (var row in table.Rows)
        {
            var style = row.Emphasis ? new Style(Color.Aqua, decoration: Decoration.Bold) : Style.Plain;
            rendered.AddRow(row.Cells.Select(cell => new Text(cell, style)).ToArray());
        }

        _console.Write(rendered);
        _console.WriteLine();
    }
}
