namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// An architectural exception raised while an instruction executes: unwinds to the block loop, which restores
/// RIP to the faulting instruction and delivers <see cref="Vector"/> through the IDT. Never escapes the CPU.
/// Constructed and thrown only by <c>X86Cpu.RaiseFault</c> (and <c>RaiseUndefined</c>), never by a handler itself.
/// </summary>
internal sealed class GuestException : Exception
{
    public GuestException(ExceptionVector vector, uint? errorCode = null, string? why = null)
        : base(why ?? $"guest exception {vector}")
    {
        Vector = vector;
        ErrorCode = errorCode;
    }

    /// <summary>The vector delivered.</summary>
    public ExceptionVector Vector { get; }

    /// <summary>The error code pushed, for the vectors that have one.</summary>
    public uint? ErrorCode { get; }
}
