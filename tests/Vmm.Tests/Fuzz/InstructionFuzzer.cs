using System.Text.RegularExpressions;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Tests.Cpu;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// The interpreter-fuzz property: a page of random instructions in a sandbox VM (<see cref="CpuTestMachine"/>, every
/// IDT vector a gate to its own HLT) ends within the instruction budget in a halt, a guest exception delivered through
/// the IDT (then halted in its handler), a triple fault, a stop request or a VM report (<see cref="CpuExit"/>) — never
/// with a managed exception escaping <see cref="X86Cpu.Run"/>; the driver's watchdog catches a hang.
/// </summary>
internal static partial class InstructionFuzzer
{
    /// <summary>Instructions per input.</summary>
    public const long Budget = 10_000;

    private const ulong Cr4Osfxsr = 1UL << 9;
    private const ulong Cr4Osxmmexcpt = 1UL << 10;

    private static readonly Register[] Gprs =
    [
        Register.RAX, Register.RCX, Register.RDX, Register.RBX, Register.RSP, Register.RBP, Register.RSI, Register.RDI,
        Register.R8, Register.R9, Register.R10, Register.R11, Register.R12, Register.R13, Register.R14, Register.R15,
    ];

    /// <summary>Runs <paramref name="input"/>; returns how it ended: "hlt", "#vector", or the exit reason (with the report's gist).</summary>
    public static string Run(InstructionFuzzCase input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var machine = new CpuTestMachine(input.Bitness, input.Sse ? Cr4Osfxsr | Cr4Osxmmexcpt : 0);
        machine.WriteCode(CpuTestMachineAddresses.Handlers, Enumerable.Repeat((byte)0xF4, 256).ToArray());
        for (var vector = 0; vector < 256; vector++)
        {
            machine.SetGate(vector, CpuTestMachineAddresses.Handlers + (ulong)vector);
        }

        machine.WriteCode(CpuTestMachineAddresses.Code, input.Code);
        machine.Cpu.Rip = CpuTestMachineAddresses.Code;
        for (var i = 0; i < (input.Bitness == 64 ? 16 : 8); i++)
        {
            machine.Cpu.SetRegister(Gprs[i], input.Bitness == 64 ? input.Registers[i] : (uint)input.Registers[i]);
        }

        var exit = machine.Run(Budget);
        var vectorHit = machine.Cpu.Rip - 1 - CpuTestMachineAddresses.Handlers;
        return exit.Reason switch
        {
            CpuExitReason.Halted when vectorHit < 256 => $"{input.Bitness}-bit: exception #{(ExceptionVector)vectorHit}",
            CpuExitReason.Halted => $"{input.Bitness}-bit: hlt",
            CpuExitReason.InternalError or CpuExitReason.StopRequested => $"{input.Bitness}-bit: {exit.Reason}: {Gist(exit.Detail)}",
            _ => $"{input.Bitness}-bit: {exit.Reason}",
        };
    }

    // The report without its numbers, so that equal reports count together.
    private static string Gist(string detail)
    {
        var text = Numbers().Replace(detail, "#");
        var cut = text.IndexOf(" at RIP", StringComparison.Ordinal);
        text = cut >= 0 ? text[..cut] : text;
        return text.Length > 90 ? text[..90] : text;
    }

    [GeneratedRegex("0x[0-9a-fA-F]+|[0-9]+")]
    private static partial Regex Numbers();
}
