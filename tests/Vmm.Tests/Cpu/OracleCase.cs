using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// One instruction form checked against the host CPU: the code to run (touching only RAX, RCX, RDX and RFLAGS),
/// which flags the SDM defines for given operands, and how to pick operands.
/// </summary>
/// <param name="name">The test name (the instruction as written).</param>
/// <param name="emit">Emits the instruction(s) under test.</param>
/// <param name="definedFlags">The RFLAGS bits the SDM defines after the instruction for these inputs.</param>
/// <param name="needsLongMode">True when the code only exists in 64-bit mode.</param>
public sealed class OracleCase(string name, Action<Assembler> emit, Func<OracleOperands, ulong> definedFlags, bool needsLongMode)
{
    /// <summary>The test name.</summary>
    public string Name { get; } = name;

    /// <summary>Emits the instruction(s) under test.</summary>
    public Action<Assembler> Emit { get; } = emit;

    /// <summary>The RFLAGS bits the SDM defines after the instruction for these inputs.</summary>
    public Func<OracleOperands, ulong> DefinedFlags { get; } = definedFlags;

    /// <summary>True when the code only exists in 64-bit mode.</summary>
    public bool NeedsLongMode { get; } = needsLongMode;

    /// <summary>Picks inputs; the default mixes boundary values with random 64-bit words and random arithmetic flags.</summary>
    public Func<Random, OracleOperands> Generate { get; init; } = OracleCatalog.GeneralOperands;

    /// <summary>False for inputs the host must not run (a #DE would kill the test process).</summary>
    public Func<OracleOperands, bool> IsValid { get; init; } = static _ => true;

    /// <summary>True for inputs after which the SDM leaves the registers undefined (only flags are compared).</summary>
    public Func<OracleOperands, bool> ResultUndefined { get; init; } = static _ => false;

    /// <inheritdoc />
    public override string ToString() => Name;
}
