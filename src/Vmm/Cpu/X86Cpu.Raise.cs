using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The only places that construct and throw the interpreter's two unwinding signals: a guest exception
/// (<see cref="GuestException"/>, delivered through the IDT by the block loop) and a VM failure
/// (<see cref="VmFailureException"/>, which stops the vCPU with an internal error). Every handler raises through
/// these helpers, so its own code stays small enough to inline and the throw sits out of line.
/// </summary>
/// <remarks>Invariant: the block loop (<see cref="RunBlocks"/>) and event delivery are the only catchers, and they
/// catch only these two types; no BCL exception is ever used as a signal inside the interpreter.</remarks>
public sealed partial class X86Cpu
{
    /// <summary>Raises guest exception <paramref name="vector"/> with its error code (null for vectors without one).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RaiseFault(ExceptionVector vector, uint? errorCode = null, string? why = null) =>
        throw new GuestException(vector, errorCode, why);

    /// <summary>As <see cref="RaiseFault"/>, typed for expression contexts (switch arms, conditional operands).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static T RaiseFault<T>(ExceptionVector vector, uint? errorCode = null, string? why = null) =>
        throw new GuestException(vector, errorCode, why);

    /// <summary>Raises #UD for <paramref name="d"/>, remembering why for the report if it escalates to a triple fault.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RaiseUndefined(ref DecodedInstruction d, string what)
    {
        _lastFaultDetail = $"#UD at RIP 0x{_currentIp:x} ({d.Instruction}): {what}";
        throw new GuestException(ExceptionVector.InvalidOpcode, null, _lastFaultDetail);
    }

    /// <summary>Stops the vCPU: the machine cannot continue (a mode the interpreter does not model, a broken walk).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FailVm(string message) => throw new VmFailureException(message);

    /// <summary>Stops the vCPU with <paramref name="reason"/>: the host could not back guest memory (out of memory, a memory failure).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FailVm(string message, CpuExitReason reason) => throw new VmFailureException(message, reason);
}
