using System.Text;

namespace Hypervisor.Vmm.Cli.Output;

/// <summary>Plain text: columns padded to their widest cell, two spaces apart, no trailing blanks.</summary>
internal sealed class PlainReportWriter : ReportWriter
{
    private const string Gap = "  ";

    private readonly TextWriter _output;

    /// <summary>Creates a writer on <paramref name="output"/>.</summary>
    public PlainReportWriter(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <inheritdoc />
    public override void Title(string text)
    {
        _output.WriteLine(text);
        _output.WriteLine(new string('=', text.Length));
        _output.WriteLine();
    }

    /// <inheritdoc />
    public override void Section(string text)
    {
        _output.WriteLine(text);
        _output.WriteLine(new string('-', text.Length));
    }

    /// <inheritdoc />
    public override void Paragraph(params string[] lines)
    {
        foreach (var line in lines)
        {
            _output.WriteLine(line);
        }

        _output.WriteLine();
    }

    /// <inheritdoc />
    public override void Table(ReportTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        var widths = table.Columns.Select(c => c.Header.Length).ToArray();
        foreach (var row in table.Rows)
        {
            for (var i = 0; i < widths.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row.Cells[i].Length);
            }
        }

        WriteRow(table, widths, table.Columns.Select(c => c.Header).ToArray());
        WriteRow(table, widths, widths.Select(w => new string('-', w)).ToArray());
        foreach (var row in table.Rows)
        {
            WriteRow(table, widths, row.Cells);
        }

        _output.WriteLine();
    }

    private void WriteRow(ReportTable table, int[] widths, IReadOnlyList<string> cells)
    {
        var line = new StringBuilder();
        for (var i = 0; i < widths.Length; i++)
        {
            if (i > 0)
            {
                line.Append(Gap);
            }

            line.Append(table.Columns[i].AlignRight ? cells[i].PadLeft(widths[i]) : cells[i].PadRight(widths[i]));
        }

        _output.WriteLine(line.ToString().TrimEnd());
    }
}
