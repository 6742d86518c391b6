using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>The JSON document's number cells and JSON keys, and the charts' round axis maxima.</summary>
public sealed class ReportJsonWriterTests
{
    [TestCase("1,024", 1024)]
    [TestCase("0", 0)]
    [TestCase("-3", -3)]
    [TestCase("0.25", 0.25)]
    [TestCase("12,345,678.5", 12345678.5)]
    public void AWholeNumberCellIsANumber(string cell, double expected) => Assert.That(ReportJsonWriter.Number(cell), Is.EqualTo(expected));

    [TestCase("12.5 ms")]
    [TestCase("96% 96%")]
    [TestCase("1,02")]
    [TestCase("3 / 4")]
    [TestCase("")]
    [TestCase("on")]
    public void OtherCellsStayText(string cell) => Assert.That(ReportJsonWriter.Number(cell), Is.Null);

    [TestCase("EPT violations", "ept_violations")]
    [TestCase("hot set resident", "hot_set_resident")]
    [TestCase("pswpout", "pswpout")]
    [TestCase("migration-entry waits", "migration_entry_waits")]
    public void FigureNamesBecomeKeys(string figure, string key) => Assert.That(ReportJsonWriter.Key(figure), Is.EqualTo(key));

    [TestCase(0, 1)]
    [TestCase(7, 10)]
    [TestCase(1.5, 2)]
    [TestCase(2.2, 2.5)]
    [TestCase(4100, 5000)]
    [TestCase(10, 10)]
    public void ChartsEndOnARoundValue(double max, double expected) => Assert.That(SvgChart.NiceCeiling(max), Is.EqualTo(expected).Within(1e-9));
}
