using System.Text;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// One VM's console when several share standard output: text is held until a newline, then the whole line goes to the
/// shared writer with the VM's prefix (<c>[0] </c>, <c>[1] </c> …) under a lock shared by every VM's writer, so lines of
/// different VMs never interleave within a line.
/// </summary>
/// <remarks>Lock order: a <see cref="Devices.GuestConsole"/>'s own lock → the shared output lock (held only to write one line).</remarks>
internal sealed class PrefixedLineWriter : TextWriter
{
    private readonly TextWriter _inner;
    private readonly Lock _outputLock;
    private readonly string _prefix;
    private readonly StringBuilder _line = new();

    /// <summary>Creates the writer.</summary>
    /// <param name="inner">The shared output.</param>
    /// <param name="outputLock">The lock every writer on <paramref name="inner"/> takes to write a line.</param>
    /// <param name="prefix">What each line starts with, e.g. <c>[1] </c>.</param>
    public PrefixedLineWriter(TextWriter inner, Lock outputLock, string prefix)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(prefix);
        _inner = inner;
        _outputLock = outputLock ?? throw new ArgumentNullException(nameof(outputLock));
        _prefix = prefix;
    }

    /// <inheritdoc />
    public override Encoding Encoding => _inner.Encoding;

    /// <summary>The prefix of the VM with index <paramref name="index"/>: <c>[index] </c>.</summary>
    /// <param name="index">The VM's index.</param>
    public static string PrefixOf(int index) => $"[{index}] ";

    /// <summary>Every line of <paramref name="text"/> with <paramref name="prefix"/> (a final line without a newline gets one).</summary>
    /// <param name="text">Console text.</param>
    /// <param name="prefix">The prefix.</param>
    public static string Prefix(string text, string prefix)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return text;
        }

        var lines = text.EndsWith('\n') ? text[..^1].Split('\n') : text.Split('\n');
        var builder = new StringBuilder(text.Length + (lines.Length * prefix.Length) + 1);
        foreach (var line in lines)
        {
            builder.Append(prefix).Append(line).Append('\n');
        }

        return builder.ToString();
    }

    /// <inheritdoc />
    public override void Write(char value)
    {
        if (value == '\n')
        {
            EmitLine();
            return;
        }

        _line.Append(value);
    }

    /// <inheritdoc />
    public override void Write(char[] buffer, int index, int count)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        for (var i = index; i < index + count; i++)
        {
            Write(buffer[i]);
        }
    }

    /// <summary>Writes a line held back without its newline (the guest stopped mid-line) with a newline, then flushes.</summary>
    public override void Flush()
    {
        if (_line.Length > 0)
        {
            EmitLine();
        }

        lock (_outputLock)
        {
            _inner.Flush();
        }
    }

    private void EmitLine()
    {
        lock (_outputLock)
        {
            _inner.Write(_prefix);
            _inner.Write(_line);
            _inner.Write('\n');
        }

        _line.Clear();
    }
}
