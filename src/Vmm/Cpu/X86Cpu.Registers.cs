using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>General registers by Iced <see cref="Register"/>, and the control and system registers.</summary>
public sealed partial class X86Cpu
{
    internal const ulong Cr0Pe = 1UL << 0;
    internal const ulong Cr0Et = 1UL << 4;
    internal const ulong Cr0Ts = 1UL << 3;
    internal const ulong Cr0Pg = 1UL << 31;
    internal const ulong Cr4Pae = 1UL << 5;
    internal const ulong Cr4Pse = 1UL << 4;
    internal const ulong Cr4Pge = 1UL << 7;
    internal const ulong Cr4Smep = 1UL << 20;
    internal const ulong EferLme = 1UL << 8;
    internal const ulong EferLma = 1UL << 10;

    // Per Iced register: GPR index (0–15) in bits 0–3, size in bytes in bits 8–15, bit 4 set for AH/CH/DH/BH.
    private static readonly ushort[] RegisterInfo = BuildRegisterInfo();

    private ulong _cr0;
    private ulong _cr2;
    private ulong _cr3;
    private ulong _cr4;
    private ulong _efer;
    private ulong _gdtBase;
    private ushort _gdtLimit;
    private ulong _idtBase;
    private ushort _idtLimit;
    private ulong _apicBase;
    private ulong _kernelGsBase;
    private ulong _star;
    private ulong _lstar;
    private ulong _cstar;
    private ulong _sfmask;
    private ulong _pat = 0x0007_0406_0007_0406UL;
    private ulong _tscAux;
    private long _tscOffset;
    private ulong _miscEnable = 1;
    private readonly ulong[] _debug = new ulong[8];

    /// <summary>CR0.</summary>
    public ulong Cr0 => _cr0;

    /// <summary>CR2 (the last page-fault address).</summary>
    public ulong Cr2 => _cr2;

    /// <summary>CR3.</summary>
    public ulong Cr3 => _cr3;

    /// <summary>CR4.</summary>
    public ulong Cr4 => _cr4;

    /// <summary>IA32_EFER.</summary>
    public ulong Efer => _efer;

    /// <summary>The current privilege level (CS.DPL as loaded).</summary>
    public int Cpl => _segments[(int)SegmentRegister.Cs].Dpl;

    /// <summary>The selector in a segment register.</summary>
    public ushort SelectorOf(SegmentRegister segment) => _segments[(int)segment].Selector;

    /// <summary>The cached base of a segment register.</summary>
    public ulong BaseOf(SegmentRegister segment) => _segments[(int)segment].Base;

    /// <summary>Reads a general register of any size (AL … R15, AH/CH/DH/BH).</summary>
    /// <exception cref="ArgumentException"><paramref name="register"/> is not a general register.</exception>
    public ulong GetRegister(Register register)
    {
        if (!register.IsGPR())
        {
            throw new ArgumentException($"{register} is not a general register", nameof(register));
        }

        return ReadRegister(register);
    }

    /// <summary>Writes a general register with x86's rules (32-bit writes zero the upper half; 8/16-bit writes merge).</summary>
    /// <exception cref="ArgumentException"><paramref name="register"/> is not a general register.</exception>
    public void SetRegister(Register register, ulong value)
    {
        if (!register.IsGPR())
        {
            throw new ArgumentException($"{register} is not a general register", nameof(register));
        }

        WriteRegister(register, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong Gpr(int index) => ref Unsafe.Add(ref Unsafe.As<GprFile, ulong>(ref _gpr), index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadRegister(Register register) => ReadGpr(RegisterInfo[(int)register]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteRegister(Register register, ulong value) => WriteGpr(RegisterInfo[(int)register], value);

    /// <summary>Reads the register a descriptor names (slot in bits 0–3, bit 4 for AH…BH, size in bits 8–15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadGpr(ushort info)
    {
        var value = Gpr(info & 0xF);
        return (info >> 8) switch
        {
            8 => value,
            4 => (uint)value,
            2 => (ushort)value,
            _ => (info & 0x10) != 0 ? (byte)(value >> 8) : (byte)value,
        };
    }

    /// <summary>Writes the register a descriptor names with x86's rules (32-bit writes zero-extend, 8/16-bit writes merge).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteGpr(ushort info, ulong value)
    {
        ref var slot = ref Gpr(info & 0xF);
        switch (info >> 8)
        {
            case 8:
                slot = value;
                break;
            case 4:
                slot = (uint)value;
                break;
            case 2:
                slot = (slot & ~0xFFFFUL) | (ushort)value;
                break;
            default:
                slot = (info & 0x10) != 0 ? (slot & ~0xFF00UL) | ((value & 0xFF) << 8) : (slot & ~0xFFUL) | (byte)value;
                break;
        }
    }

    private static ushort[] BuildRegisterInfo()
    {
        var table = new ushort[Enum.GetValues<Register>().Max(r => (int)r) + 1];
        foreach (var register in Enum.GetValues<Register>())
        {
            if (!register.IsGPR())
            {
                continue;
            }

            var full = register.GetFullRegister();
            var index = full - Register.RAX;
            var high = register is Register.AH or Register.CH or Register.DH or Register.BH;
            if (high)
            {
                index = register - Register.AH;
            }

            table[(int)register] = (ushort)(index | (high ? 0x10 : 0) | (register.GetSize() << 8));
        }

        return table;
    }
}
