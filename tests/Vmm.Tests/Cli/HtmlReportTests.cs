using System.Xml;
using System.Xml.Linq;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>--report FILE.html</c>: one self-contained page (well-formed, no URL, file or script from outside), a pair of SVG
/// charts per VM with the series drawn, the report's tables; and in a real headless browser (Debian's chromium, where
/// installed) the page renders with its script run and no console error.
/// </summary>
public sealed class HtmlReportTests
{
    private string _directory = string.Empty;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("hv-html-report-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    [Category(TestCategories.Guest)]
    public void ThePageIsSelfContainedWithTwoChartsPerVmAndTheTables()
    {
        var path = Path.Combine(_directory, "run.html");
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "2", "--plain", "--report", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var text = File.ReadAllText(path);
        var page = Load(path);
        var articles = Elements(page, "article").Where(a => (string?)a.Attribute("class") == "vm").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(result.StderrLines, Does.Contain($"hv: report: 2 VM(s) charted in {path}"));
            Assert.That(text, Does.Not.Contain("http:").And.Not.Contain("https:").And.Not.Contain("url(").And.Not.Contain("@import"), "nothing from the network");
            Assert.That(page.Descendants().Attributes().Where(a => a.Name.LocalName is "src" or "href"), Is.Empty, "no file or link from outside");
            Assert.That(Elements(page, "link"), Is.Empty);
            Assert.That(Elements(page, "script").Single().Value, Does.Contain("svg.chart"), "one inline script, the chart count");
            Assert.That(articles.Select(a => (string?)a.Element("h3")), Is.EqualTo(new[] { "[0] hello.elf", "[1] hello.elf" }));
            foreach (var article in articles)
            {
                var charts = article.Descendants("svg").ToList();
                Assert.That(charts.Select(c => (string?)c.Attribute("data-chart")), Is.EqualTo(new[] { "pages", "rates" }));
                var resident = charts[0].Descendants().Where(e => (string?)e.Attribute("data-series") == "resident pages").ToList();
                Assert.That(resident, Has.Count.EqualTo(1), "the resident pages are drawn");
                // A line, or a dot when the short guest gave a single rate point.
                Assert.That(charts[1].Descendants().Select(e => (string?)e.Attribute("data-series")), Does.Contain("EPT violations per second"));
            }

            // The report's table, a column per VM and one for the host, as the text report has it.
            var table = Elements(page, "table").Single();
            Assert.That(table.Descendants("th").Select(th => th.Value), Is.EqualTo(new[] { "figure", "[0] hello.elf", "[1] hello.elf", "host" }));
            Assert.That(table.Descendants("tr").Select(tr => tr.Elements("td").FirstOrDefault()?.Value), Does.Contain("EPT violations"));
        });
    }

    [Test]
    public void APageWithoutAVmSaysThereIsNothingToChart()
    {
        var path = Path.Combine(_directory, "bench.html");
        var result = Hv.Run("bench", "age", "--size", "4M", "--repeat", "1", "--report", path);

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var page = Load(path);
        Assert.Multiple(() =>
        {
            Assert.That(Elements(page, "svg"), Is.Empty);
            Assert.That(Elements(page, "p").Select(p => p.Value), Has.Some.StartsWith("No VM was sampled in this command (a bench builds none;"));
            Assert.That(Elements(page, "table").ToList(), Has.Count.EqualTo(1));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ChromiumRendersThePageWithoutScriptErrors()
    {
        if (HeadlessBrowser.Find() is not { } browser)
        {
            Assert.Ignore("no chromium here (apt-get install chromium; .ci/run installs it where it can): the page was not opened in a browser");
            return;
        }

        var path = Path.Combine(_directory, "run.html");
        var run = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "2", "--json", "--report", path);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);

        var (dom, console, exitCode) = HeadlessBrowser.DumpDom(browser, path);

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero);
            Assert.That(console, Is.Empty, "console messages or script errors");

            // Set by the page's script from the SVG elements the browser parsed: it ran, and saw 2 charts per VM.
            Assert.That(dom, Does.Contain("data-charts=\"4\""));
            Assert.That(dom, Does.Contain("4 charts rendered"));
            Assert.That(dom, Does.Contain("<polyline"));
        });
    }

    [Test]
    public void TheBrowserCheckSeesAScriptError()
    {
        // The control of the test above: a page whose script fails is caught, so a clean log there means something.
        if (HeadlessBrowser.Find() is not { } browser)
        {
            Assert.Ignore("no chromium here (apt-get install chromium; .ci/run installs it where it can)");
            return;
        }

        var path = Path.Combine(_directory, "broken.html");
        File.WriteAllText(path, "<!DOCTYPE html><html><body><p>broken</p><script>noSuchFunction();</script></body></html>");

        var (dom, console, _) = HeadlessBrowser.DumpDom(browser, path);

        Assert.Multiple(() =>
        {
            Assert.That(dom, Does.Contain("<p>broken</p>"));
            Assert.That(console, Has.Some.Contains("Uncaught ReferenceError"));
        });
    }

    private static XDocument Load(string path)
    {
        // Well-formed: the page parses as XML (the HTML doctype is ignored).
        using var reader = XmlReader.Create(path, new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        return XDocument.Load(reader);
    }

    private static IEnumerable<XElement> Elements(XDocument page, string name) => page.Descendants(name);
}
