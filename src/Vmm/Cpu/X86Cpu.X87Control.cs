using System.Buffers.Binary;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The x87 FPU's control and environment instructions — FNINIT, FNCLEX, WAIT, FNSTSW, FNSTCW, FLDCW, FNSTENV and
/// FLDENV — over the x87 state FXSAVE and XSAVE already carry, so that CPUID may report the FPU an x86-64 operating
/// system requires (Linux refuses to boot without it). The x87 arithmetic and data movement instructions stay
/// unimplemented (#UD with a log line): the state they would change is only what these instructions and
/// FXRSTOR/XRSTOR load.
/// </summary>
/// <remarks>Layout of <c>_ext.X87</c> (the FXSAVE legacy area): FCW at 0, FSW at 2, the abridged tag byte at 4, FOP at 6,
/// FIP at 8, FDP at 16, ST0–7 from 32 in 16-byte slots.</remarks>
public sealed partial class X86Cpu
{
    private const int FcwOffset = 0;
    private const int FswOffset = 2;
    private const int FtwOffset = 4;
    private const ushort FcwInit = 0x037F;

    /// <summary>FSW bits FNCLEX clears: the six exception flags, the stack fault (6), the error summary (7) and busy (15).</summary>
    private const ushort FswExceptionBits = 0x80FF;

    /// <summary>The FCW as last loaded.</summary>
    internal ushort X87ControlWord => BinaryPrimitives.ReadUInt16LittleEndian(_ext.X87.AsSpan(FcwOffset));

    /// <summary>The FSW as last loaded.</summary>
    internal ushort X87StatusWord => BinaryPrimitives.ReadUInt16LittleEndian(_ext.X87.AsSpan(FswOffset));

    private void ExecuteX87Control(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        RequireX87(ref d, i.Mnemonic == Mnemonic.Wait);
        var x87 = _ext.X87.AsSpan();
        switch (i.Mnemonic)
        {
            case Mnemonic.Fninit: case Mnemonic.Finit:
                x87[..X87HeaderBytes].Clear();
                BinaryPrimitives.WriteUInt16LittleEndian(x87[FcwOffset..], FcwInit);
                return;
            case Mnemonic.Fnclex: case Mnemonic.Fclex:
                BinaryPrimitives.WriteUInt16LittleEndian(x87[FswOffset..], (ushort)(X87StatusWord & ~FswExceptionBits));
                return;
            case Mnemonic.Wait:
                // No x87 exception is ever pending: the interpreter executes no instruction that could raise one.
                return;
            case Mnemonic.Fnstsw: case Mnemonic.Fstsw:
                if (i.Op0Kind == OpKind.Register)
                {
                    WriteRegister(i.Op0Register, X87StatusWord);
                }
                else
                {
                    WriteMemory(Linear(ref d), 2, X87StatusWord);
                }

                return;
            case Mnemonic.Fnstcw: case Mnemonic.Fstcw:
                WriteMemory(Linear(ref d), 2, X87ControlWord);
                return;
            case Mnemonic.Fldcw:
                // Bits 6, 13–15 are reserved and read as 0x40 | … on real CPUs: keep bit 6 set as hardware reports it.
                BinaryPrimitives.WriteUInt16LittleEndian(x87[FcwOffset..], (ushort)(((ushort)ReadMemory(Linear(ref d), 2) & 0x1F3F) | 0x40));
                return;
            case Mnemonic.Fnstenv: case Mnemonic.Fstenv:
                StoreX87Environment(ref d);
                return;
            case Mnemonic.Fldenv:
                LoadX87Environment(ref d);
                return;
            default:
                RaiseUndefined(ref d, $"'{i}' is not implemented by the interpreter (x87 arithmetic is not modelled)");
                return;
        }
    }

    /// <summary>#NM when CR0.EM is set (or CR0.TS, except for WAIT, which needs CR0.MP with TS).</summary>
    private void RequireX87(ref DecodedInstruction d, bool wait)
    {
        var faults = wait ? (_cr0 & (Cr0Ts | Cr0Mp)) == (Cr0Ts | Cr0Mp) : (_cr0 & (Cr0Ts | Cr0Em)) != 0;
        if (faults)
        {
            _lastFaultDetail = $"#NM at RIP 0x{_currentIp:x} ({d.Instruction}): CR0.{(wait ? "TS with MP" : "TS or EM")} is set";
            RaiseFault(ExceptionVector.DeviceNotAvailable, null, _lastFaultDetail);
        }
    }

    /// <summary>FNSTENV in the 28-byte protected-mode format (also 64-bit mode's): FCW, FSW, the full tag word, FIP, FCS/FOP, FDP, FDS; then masks every exception, as the instruction does.</summary>
    private void StoreX87Environment(ref DecodedInstruction d)
    {
        var linear = Linear(ref d);
        var x87 = _ext.X87.AsSpan();
        WriteMemory(linear, 4, X87ControlWord | 0xFFFF_0000u);
        WriteMemory(linear + 4, 4, X87StatusWord | 0xFFFF_0000u);
        WriteMemory(linear + 8, 4, FullTagWord(x87[FtwOffset]) | 0xFFFF_0000u);
        WriteMemory(linear + 12, 4, BinaryPrimitives.ReadUInt32LittleEndian(x87[8..]));
        WriteMemory(linear + 16, 4, (uint)BinaryPrimitives.ReadUInt16LittleEndian(x87[6..]) << 16);
        WriteMemory(linear + 20, 4, BinaryPrimitives.ReadUInt32LittleEndian(x87[16..]));
        WriteMemory(linear + 24, 4, 0xFFFF_0000u);
        BinaryPrimitives.WriteUInt16LittleEndian(x87[FcwOffset..], (ushort)(X87ControlWord | 0x3F));
    }

    private void LoadX87Environment(ref DecodedInstruction d)
    {
        var linear = Linear(ref d);
        var fcw = (ushort)ReadMemory(linear, 4);
        var fsw = (ushort)ReadMemory(linear + 4, 4);
        var ftw = (ushort)ReadMemory(linear + 8, 4);
        var fip = (uint)ReadMemory(linear + 12, 4);
        var fop = (ushort)(ReadMemory(linear + 16, 4) >> 16);
        var fdp = (uint)ReadMemory(linear + 20, 4);
        var x87 = _ext.X87.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(x87[FcwOffset..], (ushort)((fcw & 0x1F3F) | 0x40));
        BinaryPrimitives.WriteUInt16LittleEndian(x87[FswOffset..], fsw);
        x87[FtwOffset] = AbridgedTag(ftw);
        BinaryPrimitives.WriteUInt16LittleEndian(x87[6..], (ushort)(fop & 0x7FF));
        BinaryPrimitives.WriteUInt64LittleEndian(x87[8..], fip);
        BinaryPrimitives.WriteUInt64LittleEndian(x87[16..], fdp);
    }

    /// <summary>The 16-bit tag word from the abridged one: 11 (empty) where the abridged bit is clear, else 00 (valid).</summary>
    internal static ushort FullTagWord(byte abridged)
    {
        var full = 0;
        for (var r = 0; r < 8; r++)
        {
            full |= ((abridged >> r) & 1) == 0 ? 3 << (2 * r) : 0;
        }

        return (ushort)full;
    }

    /// <summary>The abridged tag byte from a full tag word: bit r set where register r's tag is not 11 (empty).</summary>
    internal static byte AbridgedTag(ushort full)
    {
        var abridged = 0;
        for (var r = 0; r < 8; r++)
        {
            abridged |= ((full >> (2 * r)) & 3) != 3 ? 1 << r : 0;
        }

        return (byte)abridged;
    }
}
