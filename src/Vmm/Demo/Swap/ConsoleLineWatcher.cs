using System.Text;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// The writer behind a demo run's guest console (which keeps the transcript itself): hands each complete line to a
/// callback on the vCPU's thread, at the port write that ends it (no guest memory access is in flight there).
/// </summary>
/// <param name="onLine">Called with each line, without its newline.</param>
/// <remarks>Threads: written by the one vCPU that runs; not for concurrent writers.</remarks>
internal sealed class ConsoleLineWatcher(Action<string> onLine) : TextWriter
{
    private readonly StringBuilder _line = new();

    /// <inheritdoc />
    public override Encoding Encoding => Encoding.UTF8;

    /// <inheritdoc />
    public override void Write(char value)
    {
        if (value != '\n')
        {
            _line.Append(value);
            return;
        }

        var line = _line.ToString().TrimEnd('\r');
        _line.Clear();
        onLine(line);
    }
}
