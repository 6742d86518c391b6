using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Tests.Cli;

public sealed class ReportWriterTests
{
    private static ReportTable Sample()
    {
        var table = new ReportTable(new ReportColumn("#", AlignRight: true), new ReportColumn("range"), new ReportColumn("note", Wrap: true));
        table.AddRow("9", "[0x1000, 0x2000)", "[bold]not markup[/]");
        table.AddEmphasisedRow("10", string.Empty, "x");
        return table;
    }

    [Test]
    public void PlainTablePadsColumnsRightAlignsNumbersAndTrimsLineEnds()
    {
        using var output = new StringWriter();
        new PlainReportWriter(output).Table(Sample());

        Assert.That(output.ToString().Split(Environment.NewLine), Is.EqualTo(new[]
        {
            " #  range             note",
            "--  ----------------  -------------------",
            " 9  [0x1000, 0x2000)  [bold]not markup[/]",
            "10                    x",
            string.Empty,
            string.Empty,
        }));
    }

    [Test]
    public void StyledTableEscapesTextThatLooksLikeMarkup()
    {
        using var output = new StringWriter();
        new SpectreReportWriter(output).Table(Sample());

        Assert.That(output.ToString(), Does.Contain("[0x1000, 0x2000)").And.Contain("[bold]not markup[/]"));
    }

    [Test]
    public void RowWithTheWrongNumberOfCellsIsRejected()
    {
        var table = new ReportTable(new ReportColumn("a"), new ReportColumn("b"));

        Assert.That(() => table.AddRow("only one"), Throws.ArgumentException.With.Message.Contains("needs 2 cells, got 1"));
    }

    [Test]
    public void TerminalOutputUsesStyledTablesUnlessPlainIsAsked()
    {
        using var output = new StringWriter();
        var terminal = new CliContext(output, TextWriter.Null, isTerminal: true);
        var redirected = new CliContext(output, TextWriter.Null, isTerminal: false);

        Assert.Multiple(() =>
        {
            Assert.That(ReportWriter.Create(terminal, plain: false), Is.InstanceOf<SpectreReportWriter>());
            Assert.That(ReportWriter.Create(terminal, plain: true), Is.InstanceOf<PlainReportWriter>());
            Assert.That(ReportWriter.Create(redirected, plain: false), Is.InstanceOf<PlainReportWriter>());
        });
    }

    [Test]
    public void HostDemoRendersOnATerminal()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exitCode = Program.Run(["demo", "--seed", "3"], new CliContext(output, error, isTerminal: true));

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, error.ToString());
            Assert.That(output.ToString(), Does.Contain("Timeline").And.Contain("InvalidateRangeStart").And.Contain("HostTlbFlush").And.Contain("│"));
        });
    }
}
