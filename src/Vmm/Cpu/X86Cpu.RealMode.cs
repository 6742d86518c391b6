namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// Real-address mode (CR0.PE = 0): the mode an application processor starts in after INIT–SIPI–SIPI and the
/// mode a trampoline leaves through a far jump once it has set CR0.PE. Segment loads set the base to selector × 16
/// and keep the rest of the hidden cache (so a segment loaded in protected mode keeps its limit, as on hardware);
/// a CS load makes the code segment 16-bit. Interrupts and exceptions go through the interrupt vector table at the
/// IDTR base (4-byte offset:segment entries), push FLAGS, CS and IP and no error code. CPL is 0.
/// </summary>
public sealed partial class X86Cpu
{
    /// <summary>Attributes of a real-mode code segment: present, code/data, execute/read, accessed, 16-bit, DPL 0.</summary>
    private const ushort RealModeCodeAttributes = SegmentState.AttrP | SegmentState.AttrS | 0xB;

    /// <summary>Attributes of a real-mode data segment: present, code/data, read/write, accessed, DPL 0.</summary>
    private const ushort RealModeDataAttributes = SegmentState.AttrP | SegmentState.AttrS | 0x3;

    private const ulong FlagVm = 1UL << 17;
    private const ulong FlagVif = 1UL << 19;
    private const ulong FlagVip = 1UL << 20;

    /// <summary>True while CR0.PE is clear.</summary>
    public bool InRealMode => (_cr0 & Cr0Pe) == 0;

    /// <summary>MOV/POP to a segment register or a far transfer's CS load with CR0.PE clear: no descriptor, no checks.</summary>
    private void LoadRealModeSegment(SegmentRegister segment, ushort selector)
    {
        ref var state = ref _segments[(int)segment];
        state.Selector = selector;
        state.Base = (ulong)selector << 4;
        if (segment == SegmentRegister.Cs)
        {
            // The code segment becomes 16-bit execute/read; its limit stays as cached (0xFFFF from reset).
            state.Attributes = RealModeCodeAttributes;
            state.Limit = Math.Max(state.Limit, 0xFFFFu);
            UpdateMode();
            UpdatePaging();
        }
        else
        {
            // Limit, D/B and G stay as cached ("unreal mode" when a protected-mode load left them big).
            state.Attributes = (ushort)((state.Attributes & (SegmentState.AttrDb | SegmentState.AttrG)) | RealModeDataAttributes);
            state.Limit = Math.Max(state.Limit, 0xFFFFu);
        }

        UpdateStackSize();
    }

    /// <summary>Delivers <paramref name="vector"/> through the interrupt vector table: FLAGS, CS, IP pushed (16 bits each), IF/TF/AC/RF cleared.</summary>
    private void DeliverRealModeEvent(byte vector, ulong returnIp)
    {
        var entry = (ulong)vector * 4;
        if (entry + 3 > _idtLimit)
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(vector * 8) | 2);
        }

        var pointer = ReadSystem((uint)(_idtBase + entry), 4);
        var flags = GetRflags();
        Push(flags & 0xFFFF, 2);
        Push(_segments[(int)SegmentRegister.Cs].Selector, 2);
        Push(returnIp & 0xFFFF, 2);
        LoadRealModeSegment(SegmentRegister.Cs, (ushort)(pointer >> 16));
        _rip = pointer & 0xFFFF;
        SetRflags(flags & ~(FlagIf | FlagTf | FlagAc | FlagRf));
    }

    /// <summary>IRET with CR0.PE clear: IP, CS and FLAGS popped at the operand size; every flag but VM may change.</summary>
    private void RealModeInterruptReturn(int size)
    {
        var ip = Pop(size);
        var cs = (ushort)Pop(size);
        var flags = Pop(size);
        LoadRealModeSegment(SegmentRegister.Cs, cs);
        var keep = size == 2 ? ~0xFFFFUL : FlagVm | FlagVip | FlagVif;
        var previousAc = _rflags & FlagAc;
        SetRflags((flags & ~keep) | (_rflags & keep));
        if ((_rflags & FlagAc) != previousAc) { UpdatePaging(); }
        _rip = size == 2 ? (ushort)ip : (uint)ip;
    }
}
