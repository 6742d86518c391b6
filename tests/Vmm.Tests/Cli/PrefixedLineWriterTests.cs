using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// The per-VM console writer of <c>hv run</c> with several VMs: whole lines with the VM's prefix, never a line of one
/// VM broken by another's, a line cut off by the guest's end finished with a newline, and transcripts prefixed alike.
/// </summary>
public sealed class PrefixedLineWriterTests
{
    [Test]
    public void LinesAreHeldUntilTheirNewlineSoTwoVmsNeverInterleaveWithinALine()
    {
        using var output = new StringWriter();
        var gate = new Lock();
        using var first = new PrefixedLineWriter(output, gate, PrefixedLineWriter.PrefixOf(0));
        using var second = new PrefixedLineWriter(output, gate, PrefixedLineWriter.PrefixOf(1));

        first.Write("hel");
        second.Write("wor");
        first.Write("lo\nsecond line\n");
        second.Write("ld\n");

        Assert.That(output.ToString(), Is.EqualTo("[0] hello\n[0] second line\n[1] world\n"));
    }

    [Test]
    public void FlushFinishesALineTheGuestLeftOpen()
    {
        using var output = new StringWriter();
        using var writer = new PrefixedLineWriter(output, new Lock(), PrefixedLineWriter.PrefixOf(3));

        writer.Write("no newline");
        var before = output.ToString();
        writer.Flush();

        Assert.Multiple(() =>
        {
            Assert.That(before, Is.Empty);
            Assert.That(output.ToString(), Is.EqualTo("[3] no newline\n"));
        });
    }

    [TestCase("", "")]
    [TestCase("a\nb\n", "[2] a\n[2] b\n")]
    [TestCase("a\n\nb", "[2] a\n[2] \n[2] b\n")]
    public void ATranscriptIsPrefixedLineByLine(string transcript, string expected) =>
        Assert.That(PrefixedLineWriter.Prefix(transcript, PrefixedLineWriter.PrefixOf(2)), Is.EqualTo(expected));

    [Test]
    public void ManyThreadsWritingAtOnceLeaveOnlyWholePrefixedLines()
    {
        using var output = new StringWriter();
        var gate = new Lock();
        var writers = Enumerable.Range(0, 4).Select(i => new PrefixedLineWriter(output, gate, PrefixedLineWriter.PrefixOf(i))).ToList();

        Parallel.For(0, 4, i =>
        {
            for (var line = 0; line < 200; line++)
            {
                foreach (var c in $"vm {i} line {line}\n")
                {
                    writers[i].Write(c);
                }
            }
        });

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(lines, Has.Length.EqualTo(800));
            Assert.That(lines, Has.All.Match(@"^\[(\d)\] vm \1 line \d+$"));
        });
        writers.ForEach(w => w.Dispose());
    }
}
