namespace Hypervisor.Vmm.Cli.Output;

/// <summary>A table of plain strings that a <see cref="ReportWriter"/> renders for a terminal or as text.</summary>
internal sealed class ReportTable
{
    private readonly List<ReportRow> _rows = [];

    /// <summary>Creates a table with <paramref name="columns"/>.</summary>
    public ReportTable(params ReportColumn[] columns)
    {
        ArgumentOutOfRangeException.ThrowIfZero(columns.Length);
        Columns = columns;
    }

    /// <summary>The columns, left to right.</summary>
    public IReadOnlyList<ReportColumn> Columns { get; }

    /// <summary>The rows, top to bottom.</summary>
    public IReadOnlyList<ReportRow> Rows => _rows;

    /// <summary>Appends a row; <paramref name="cells"/> must have one text per column.</summary>
    public void AddRow(params string[] cells) => Add(cells, emphasis: false);

    /// <summary>Appends a row that heads a group of rows.</summary>
    public void AddEmphasisedRow(params string[] cells) => Add(cells, emphasis: true);

    private void Add(string[] cells, bool emphasis)
    {
        if (cells.Length != Columns.Count)
        {
            throw new ArgumentException($"a row needs {Columns.Count} cells, got {cells.Length}", nameof(cells));
        }

        _rows.Add(new ReportRow(cells, emphasis));
    }
}
