using System.Text;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// The guest console of a demo run: keeps the text and hands each complete line to a callback on the vCPU's thread, at
/// the port write that ends it (no guest memory access is in flight there).
/// </summary>
/// <param name="onLine">Called with each line, without its newline.</param>
internal sealed class ConsoleLineWatcher(Action<string> onLine) : TextWriter
{
    private readonly StringBuilder _line = new();
    private readonly Lock _lock = new();
    private readonly StringBuilder _text = new();

    /// <inheritdoc />
    public override Encoding Encoding => Encoding.UTF8;

    /// <summary>Everything the guest wrote so far.</summary>
    public string Text
    {
        get
        {
            lock (_lock)
            {
                return _text.ToString();
            }
        }
    }

    /// <inheritdoc />
    public override void Write(char value)
    {
        string? line = null;
        lock (_lock)
        {
            _text.Append(value);
            if (value == '\n')
            {
                line = _line.ToString().TrimEnd('\r');
                _line.Clear();
            }
            else
            {
                _line.Append(value);
            }
        }

        if (line is not null)
        {
            onLine(line);
        }
    }
}
