using System.Text;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class GuestConsoleTests
{
    [Test]
    public void MultiByteUtf8WrittenBytewiseDecodesWhole()
    {
        using var writer = new StringWriter();
        var console = new GuestConsole(writer);

        foreach (var b in Encoding.UTF8.GetBytes("é€\n"))
        {
            console.Write(b);
        }

        console.Flush();
        Assert.That(writer.ToString(), Is.EqualTo("é€\n"));
    }

    [Test]
    public void StreamSinkGetsTheRawBytes()
    {
        using var stream = new MemoryStream();
        var console = new GuestConsole(stream);

        console.Write(0x00);
        console.Write(0xFF);
        console.Write((byte)'\n');

        Assert.That(stream.ToArray(), Is.EqualTo(new byte[] { 0x00, 0xFF, (byte)'\n' }));
    }

    [Test]
    public void TranscriptStopsAtItsCapButCountingGoesOn()
    {
        var console = new GuestConsole(transcriptLimit: 2);

        foreach (var b in "abcd"u8.ToArray())
        {
            console.Write(b);
        }

        Assert.That(console.Transcript(), Is.EqualTo("ab"));
        Assert.That(console.BytesWritten, Is.EqualTo(4));
    }

    [Test]
    public void NegativeTranscriptCapIsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuestConsole(transcriptLimit: -1));
    }
}
