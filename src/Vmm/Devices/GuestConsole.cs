using System.Text;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The guest's console: the byte sink shared by the debug console and the UART (QEMU's <c>-debugcon stdio</c> and
/// <c>-serial stdio</c> at once). Bytes go to a <see cref="Stream"/> unchanged, or to a <see cref="TextWriter"/>
/// through a stateful UTF-8 decoder so that multi-byte characters split across writes come out whole. Every byte
/// is also kept in a transcript (up to a cap) for tests and the differential comparison. Thread-safe.
/// </summary>
public sealed class GuestConsole
{
    /// <summary>The default transcript cap: 1 MiB.</summary>
    public const int DefaultTranscriptLimit = 1 << 20;

    private readonly object _lock = new();
    private readonly Stream? _stream;
    private readonly TextWriter? _writer;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly MemoryStream _transcript = new();
    private readonly int _transcriptLimit;
    private readonly char[] _chars = new char[4];
    private readonly byte[] _one = new byte[1];
    private long _bytesWritten;

    /// <summary>A console that writes decoded text to <paramref name="writer"/>.</summary>
    /// <param name="writer">The destination, e.g. <see cref="Console.Out"/>.</param>
    /// <param name="transcriptLimit">How many bytes of transcript to keep (0 for none).</param>
    public GuestConsole(TextWriter writer, int transcriptLimit = DefaultTranscriptLimit)
        : this(transcriptLimit)
    {
        ArgumentNullException.ThrowIfNull(writer);
        _writer = writer;
    }

    /// <summary>A console that writes raw bytes to <paramref name="stream"/>, flushing at each newline.</summary>
    /// <param name="stream">The destination, e.g. <see cref="Console.OpenStandardOutput()"/>.</param>
    /// <param name="transcriptLimit">How many bytes of transcript to keep (0 for none).</param>
    public GuestConsole(Stream stream, int transcriptLimit = DefaultTranscriptLimit)
        : this(transcriptLimit)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
    }

    /// <summary>A console that only keeps the transcript.</summary>
    /// <param name="transcriptLimit">How many bytes of transcript to keep, at least 0.</param>
    public GuestConsole(int transcriptLimit = DefaultTranscriptLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(transcriptLimit);
        _transcriptLimit = transcriptLimit;
    }

    /// <summary>Bytes the guest has written, including any beyond the transcript cap.</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>The bytes written so far (up to the cap).</summary>
    /// <returns>A copy of the transcript.</returns>
    public byte[] TranscriptBytes()
    {
        lock (_lock)
        {
            return _transcript.ToArray();
        }
    }

    /// <summary>The transcript decoded as UTF-8.</summary>
    /// <returns>The text written so far (up to the cap).</returns>
    public string Transcript() => Encoding.UTF8.GetString(TranscriptBytes());

    /// <summary>Writes one byte from the guest.</summary>
    /// <param name="value">The byte.</param>
    public void Write(byte value)
    {
        lock (_lock)
        {
            _bytesWritten++;
            if (_transcript.Length < _transcriptLimit)
            {
                _transcript.WriteByte(value);
            }

            if (_stream is not null)
            {
                _one[0] = value;
                _stream.Write(_one, 0, 1);
                if (value == (byte)'\n')
                {
                    _stream.Flush();
                }
            }
            else if (_writer is not null)
            {
                _one[0] = value;
                var count = _decoder.GetChars(_one, 0, 1, _chars, 0, flush: false);
                if (count > 0)
                {
                    _writer.Write(_chars, 0, count);
                }
            }
        }
    }

    /// <summary>Flushes the destination (and any incomplete UTF-8 sequence, as U+FFFD).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (_writer is not null)
            {
                var count = _decoder.GetChars([], 0, 0, _chars, 0, flush: true);
                _writer.Write(_chars, 0, count);
                _writer.Flush();
            }

            _stream?.Flush();
        }
    }
}
