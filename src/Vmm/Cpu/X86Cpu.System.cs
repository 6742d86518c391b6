using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>System instructions: control registers, MSRs, CPUID, descriptor tables, far transfers, I/O, HLT, INT/IRET.</summary>
public sealed partial class X86Cpu
{
    private void ExecuteSystem(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        switch (d.Op)
        {
            case Op.MovToSeg:
            {
                var segment = (SegmentRegister)(i.Op0Register - Register.ES);
                if (segment == SegmentRegister.Cs)
                {
                    RaiseUndefined(ref d, "MOV to CS");
                }

                LoadSegment(segment, (ushort)ReadOperand(ref d, 1));
                if (segment == SegmentRegister.Ss) { BeginInterruptShadow(); }
                return;
            }

            case Op.MovFromSeg:
            {
                var selector = _segments[i.Op1Register - Register.ES].Selector;
                if (i.Op0Kind == OpKind.Register)
                {
                    WriteRegister(i.Op0Register, selector);
                }
                else
                {
                    WriteMemory(Linear(ref d), 2, selector);
                }

                return;
            }

            case Op.PushSeg:
                Push(_segments[i.Op0Register - Register.ES].Selector, StackOperandSize(ref d));
                return;
            case Op.PopSeg:
            {
                var size = StackOperandSize(ref d);
                var selector = (ushort)ReadStack(Gpr(4) & StackMask, size);
                LoadSegment((SegmentRegister)(i.Op0Register - Register.ES), selector);
                Pop(size);
                if (i.Op0Register == Register.SS) { BeginInterruptShadow(); }
                return;
            }

            case Op.MovToCr: RequireCpl0(); WriteControlRegister(i.Op0Register, ReadRegister(i.Op1Register)); return;
            case Op.MovFromCr: RequireCpl0(); WriteRegister(i.Op0Register, ReadControlRegister(i.Op1Register)); return;
            case Op.MovToDr: RequireCpl0(); _debug[(i.Op0Register - Register.DR0) & 7] = ReadRegister(i.Op1Register); return;
            case Op.MovFromDr: RequireCpl0(); WriteRegister(i.Op0Register, _debug[(i.Op1Register - Register.DR0) & 7]); return;
            case Op.JmpFar:
                FarJump(i.FarBranchSelector, i.Op0Kind == OpKind.FarBranch32 ? i.FarBranch32 : i.FarBranch16);
                return;
            case Op.JmpFarIndirect:
            {
                var (selector, offset) = ReadFarPointer(ref d);
                FarJump(selector, offset);
                return;
            }

            case Op.CallFar:
                FarCall(ref d, i.FarBranchSelector, i.Op0Kind == OpKind.FarBranch32 ? i.FarBranch32 : i.FarBranch16);
                return;
            case Op.CallFarIndirect:
            {
                var (selector, offset) = ReadFarPointer(ref d);
                FarCall(ref d, selector, offset);
                return;
            }

            case Op.RetFar: FarReturn(ref d); return;
            case Op.In:
            {
                var size = i.Op0Register.GetSize();
                var port = i.Op1Kind == OpKind.Register ? (ushort)Gpr(2) : i.Immediate8;
                WriteGpr(0, size, PortIn(port, size));
                return;
            }

            case Op.Out:
            {
                var size = i.Op1Register.GetSize();
                var port = i.Op0Kind == OpKind.Register ? (ushort)Gpr(2) : i.Immediate8;
                PortOut(port, size, Gpr(0));
                return;
            }

            case Op.Hlt:
                RequireCpl0();
                Halt();
                return;
            case Op.Int: DeliverSoftwareInterrupt(i.Immediate8); return;
            case Op.Int3: DeliverSoftwareInterrupt((byte)ExceptionVector.Breakpoint); return;
            case Op.Into:
                if (OverflowFlag()) { DeliverSoftwareInterrupt((byte)ExceptionVector.Overflow); }
                return;
            case Op.Iret: InterruptReturn(ref d); return;
            case Op.Ud: RaiseUndefined(ref d, "an undefined opcode"); return;
            case Op.Cpuid: Cpuid(); return;
            case Op.Rdtsc:
                SetEdxEax((ulong)(_instructions + _tscOffset));
                return;
            case Op.Rdtscp:
                SetEdxEax((ulong)(_instructions + _tscOffset));
                Gpr(1) = (uint)_tscAux;
                return;
            case Op.Rdpid: WriteRegister(i.Op0Register, _tscAux); return;
            case Op.Rdmsr:
                RequireCpl0();
                SetEdxEax(ReadMsr((uint)Gpr(1)));
                return;
            case Op.Wrmsr:
                RequireCpl0();
                WriteMsr((uint)Gpr(1), ((Gpr(2) & 0xFFFF_FFFF) << 32) | (Gpr(0) & 0xFFFF_FFFF));
                return;
            case Op.Lgdt:
            case Op.Lidt:
            {
                RequireCpl0();
                var linear = Linear(ref d);
                var limit = (ushort)ReadMemory(linear, 2);
                var tableBase = _bitness == 64 ? ReadMemory(linear + 2, 8) : ReadMemory(linear + 2, 4) & (d.Size == 2 ? 0xFF_FFFFUL : 0xFFFF_FFFFUL);
                if (d.Op == Op.Lgdt) { _gdtBase = tableBase; _gdtLimit = limit; }
                else { _idtBase = tableBase; _idtLimit = limit; }
                return;
            }

            case Op.Sgdt:
            case Op.Sidt:
            {
                var linear = Linear(ref d);
                var (tableBase, limit) = d.Op == Op.Sgdt ? (_gdtBase, _gdtLimit) : (_idtBase, _idtLimit);
                WriteMemory(linear, 2, limit);
                WriteMemory(linear + 2, _bitness == 64 ? 8 : 4, tableBase);
                return;
            }

            case Op.Ltr: RequireCpl0(); LoadSystemSegment(SegmentRegister.Tr, (ushort)ReadOperand(ref d, 0)); return;
            case Op.Lldt: RequireCpl0(); LoadSystemSegment(SegmentRegister.Ldtr, (ushort)ReadOperand(ref d, 0)); return;
            case Op.Str: WriteSelectorOperand(ref d, _segments[(int)SegmentRegister.Tr].Selector); return;
            case Op.Sldt: WriteSelectorOperand(ref d, _segments[(int)SegmentRegister.Ldtr].Selector); return;
            case Op.Invlpg:
                RequireCpl0();
                _mmu.Invlpg(new Hypervisor.GuestMmu.Addresses.Gva(Linear(ref d)));
                return;
            case Op.Clts: RequireCpl0(); _cr0 &= ~Cr0Ts; return;
            case Op.Lmsw:
                RequireCpl0();
                WriteControlRegister(Register.CR0, (_cr0 & ~0xEUL) | (ReadOperand(ref d, 0) & 0xF) | (_cr0 & Cr0Pe));
                return;
            case Op.Smsw: WriteSelectorOperand(ref d, (ushort)_cr0); return;
            case Op.Swapgs:
            {
                RequireCpl0();
                if (_bitness != 64) { RaiseUndefined(ref d, "SWAPGS outside 64-bit mode"); }
                ref var gs = ref _segments[(int)SegmentRegister.Gs];
                (gs.Base, _kernelGsBase) = (_kernelGsBase, gs.Base);
                return;
            }

            case Op.Lar:
            case Op.Lsl:
                LoadAccessOrLimit(ref d);
                return;
            case Op.Verify:
                VerifySegment(ref d);
                return;
            case Op.Syscall: case Op.Sysret: case Op.Sysenter: case Op.Sysexit: case Op.Stac: case Op.Clac: case Op.CacheLineFlush:
                ExecuteFastSystemCall(ref d);
                return;
            default:
                RaiseUndefined(ref d, $"'{i}' is not implemented by the interpreter");
                return;
        }
    }

    private void RequireCpl0()
    {
        if (Cpl != 0)
        {
            RaiseFault(ExceptionVector.GeneralProtection, 0);
        }
    }

    private void SetEdxEax(ulong value)
    {
        Gpr(0) = (uint)value;
        Gpr(2) = value >> 32;
    }

    private void WriteSelectorOperand(ref DecodedInstruction d, ushort value)
    {
        if (d.Instruction.Op0Kind == OpKind.Register) { WriteRegister(d.Instruction.Op0Register, value); }
        else { WriteMemory(Linear(ref d), 2, value); }
    }

    // A port access is a VM exit (KVM_EXIT_IO), as an MMIO access is: outside guest mode a TLB shootdown does not wait
    // for this vCPU, so a device that blocks (a demo holding the guest at a console line) cannot stall the host's
    // invalidations; pending flushes are serviced on the way out and back in.
    private uint PortIn(ushort port, int size)
    {
        _portIo++;
        _mmu.Port.ExitGuest();
        try
        {
            return _bus.ReadPort(port, size);
        }
        finally
        {
            _mmu.Port.EnterGuest();
        }
    }

    private void PortOut(ushort port, int size, ulong value)
    {
        _portIo++;
        _mmu.Port.ExitGuest();
        try
        {
            _bus.WritePort(port, size, (uint)value);
        }
        finally
        {
            _mmu.Port.EnterGuest();
        }
    }

    private ulong ReadControlRegister(Register register) => register switch
    {
        Register.CR0 => _cr0,
        Register.CR2 => _cr2,
        Register.CR3 => _cr3,
        Register.CR4 => _cr4,
        Register.CR8 => ReadCr8(),
        _ => RaiseFault<ulong>(ExceptionVector.InvalidOpcode),
    };

    private void WriteControlRegister(Register register, ulong value)
    {
        switch (register)
        {
            case Register.CR0:
            {
                value |= Cr0Et;
                if ((value >> 32) != 0 || ((value & Cr0Pg) != 0 && (value & Cr0Pe) == 0))
                {
                    RaiseFault(ExceptionVector.GeneralProtection, 0);
                }

                var enablingPaging = (value & Cr0Pg) != 0 && (_cr0 & Cr0Pg) == 0;
                var disablingPaging = (value & Cr0Pg) == 0 && (_cr0 & Cr0Pg) != 0;
                if (enablingPaging && (_efer & EferLme) == 0)
                {
                    RequireValidPaePdptes(value, _cr3, _cr4, "MOV to CR0");
                }
                if (enablingPaging && (_efer & EferLme) != 0)
                {
                    if ((_cr4 & Cr4Pae) == 0)
                    {
                        RaiseFault(ExceptionVector.GeneralProtection, 0);
                    }

                    _efer |= EferLma;
                }
                else if (disablingPaging && (_efer & EferLma) != 0)
                {
                    if (_bitness == 64)
                    {
                        RaiseFault(ExceptionVector.GeneralProtection, 0);
                    }

                    _efer &= ~EferLma;
                }

                _cr0 = value;
                UpdateMode();
                UpdateStackSize();
                UpdatePaging();
                return;
            }

            case Register.CR2:
                _cr2 = value;
                return;
            case Register.CR3:
            {
                var cr3 = _bitness == 64 ? value : (uint)value;
                RequireValidPaePdptes(_cr0, cr3, _cr4, "MOV to CR3");
                _cr3 = cr3;
                _mmu.WriteCr3(_cr3);
                return;
            }

            case Register.CR4:
                if ((_efer & EferLma) != 0 && (value & Cr4Pae) == 0)
                {
                    RaiseFault(ExceptionVector.GeneralProtection, 0);
                }

                if (((value ^ _cr4) & (Cr4Pae | Cr4Pge | Cr4Pse | Cr4Smep)) != 0)
                {
                    RequireValidPaePdptes(_cr0, _cr3, value, "MOV to CR4");
                }

                _cr4 = value;
                UpdatePaging();
                return;
            case Register.CR8:
                WriteCr8(value);
                return;
            default:
                RaiseFault(ExceptionVector.InvalidOpcode);
                return;
        }
    }

    /// <summary>
    /// A write of CR0, CR3 or CR4 that leaves the CPU in PAE paging (CR0.PG and CR4.PAE, EFER.LMA clear) loads the four
    /// PDPTEs, as Intel's CPUs do: a present one with a reserved bit set makes the MOV raise #GP before any register
    /// changes. (The walker reads the PDPTEs again on every walk; see <c>TwoDimensionalWalker.PaePdptesValid</c>.)
    /// </summary>
    private void RequireValidPaePdptes(ulong cr0, ulong cr3, ulong cr4, string instruction)
    {
        if ((cr0 & Cr0Pg) == 0 || (cr4 & Cr4Pae) == 0 || (_efer & EferLma) != 0 || _mmu.Walker.PaePdptesValid(cr3))
        {
            return;
        }

        _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: {instruction} loads PAE PDPTEs from gpa 0x{cr3 & 0xFFFF_FFE0:x}, and a present one has a reserved bit set";
        RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
    }

    private void Cpuid()
    {
        var leaf = (uint)Gpr(0);
        var subleaf = (uint)Gpr(1);
        var (a, b, c, dx) = CpuidModel.Query(leaf, subleaf, VcpuId, (_cr4 & Cr4Osxsave) != 0);
        Gpr(0) = a;
        Gpr(3) = b;
        Gpr(1) = c;
        Gpr(2) = dx;
    }

    private (ushort Selector, ulong Offset) ReadFarPointer(ref DecodedInstruction d)
    {
        var linear = Linear(ref d);
        var offsetSize = d.MemorySize - 2;
        var offset = ReadMemory(linear, offsetSize);
        var selector = (ushort)ReadMemory(linear + (ulong)offsetSize, 2);
        return (selector, offset);
    }

    private void FarJump(ushort selector, ulong offset)
    {
        LoadSegment(SegmentRegister.Cs, selector);
        _rip = _bitness == 64 ? offset : (uint)offset;
    }

    private void FarCall(ref DecodedInstruction d, ushort selector, ulong offset)
    {
        var size = StackOperandSize(ref d) / 2;
        if (size == 0) { size = _bitness == 64 ? 8 : 4; }
        var oldCs = _segments[(int)SegmentRegister.Cs].Selector;
        var returnRip = _rip;
        LoadSegment(SegmentRegister.Cs, selector);
        Push(oldCs, size);
        Push(returnRip, size);
        _rip = _bitness == 64 ? offset : (uint)offset;
    }

    private void FarReturn(ref DecodedInstruction d)
    {
        var size = d.Instruction.Code switch
        {
            Code.Retfq or Code.Retfq_imm16 => 8,
            Code.Retfw or Code.Retfw_imm16 => 2,
            _ => 4,
        };
        var target = Pop(size);
        var selector = (ushort)Pop(size);
        LoadSegment(SegmentRegister.Cs, selector);
        if (d.Instruction.OpCount == 1)
        {
            ref var rsp = ref Gpr(4);
            rsp = (rsp & ~StackMask) | ((rsp + d.Instruction.Immediate16) & StackMask);
        }

        _rip = _bitness == 64 ? target : (uint)target;
    }

    private void PopFlags(int size)
    {
        var value = Pop(size);
        var keep = Cpl == 0 ? 0UL : 3UL << 12;
        if (Cpl > (int)((_rflags >> 12) & 3)) { keep |= FlagIf; }
        if (size == 2) { keep |= ~0xFFFFUL; }
        var previousAc = _rflags & FlagAc;
        SetRflags((value & ~keep) | (_rflags & keep));
        if ((_rflags & FlagAc) != previousAc) { UpdatePaging(); }
    }

    private void PushAll(ref DecodedInstruction d)
    {
        var size = d.Instruction.Code == Code.Pushaw ? 2 : 4;
        var originalSp = Gpr(4);
        for (var n = 0; n < 8; n++)
        {
            Push(n == 4 ? originalSp : Gpr(n), size);
        }
    }

    private void PopAll(ref DecodedInstruction d)
    {
        var size = d.Instruction.Code == Code.Popaw ? 2 : 4;
        for (var n = 7; n >= 0; n--)
        {
            var value = Pop(size);
            if (n != 4) { WriteGpr(n, size, value); }
        }
    }

    private void Enter(ref DecodedInstruction d)
    {
        var size = d.Instruction.Code switch { Code.Enterq_imm16_imm8 => 8, Code.Enterw_imm16_imm8 => 2, _ => 4 };
        var frameSize = d.Instruction.Immediate16;
        var level = d.Instruction.Immediate8_2nd & 31;
        Push(Gpr(5), size);
        var frame = Gpr(4) & StackMask;
        var rbp = Gpr(5) & StackMask;
        for (var n = 1; n < level; n++)
        {
            rbp = (rbp - (uint)size) & StackMask;
            Push(ReadStack(rbp, size), size);
        }

        if (level > 0) { Push(frame, size); }
        WriteGpr(5, _stackAddressSize, frame);
        ref var rsp = ref Gpr(4);
        rsp = (rsp & ~StackMask) | ((rsp - frameSize) & StackMask);
    }

    private void LoadAccessOrLimit(ref DecodedInstruction d)
    {
        var selector = (ushort)ReadOperand(ref d, 1);

        // A null selector or one beyond its table's limit only clears ZF; a fault reading the table still faults.
        var descriptor = (selector & 0xFFFC) != 0 && TryDescriptorAddress(selector, out var address) ? ReadSystem(address, 8) : 0;

        if (descriptor == 0 || ((descriptor >> 47) & 1) == 0)
        {
            WriteFlags(FlagZf, 0);
            return;
        }

        var state = SegmentState.FromDescriptor(selector, descriptor);
        WriteRegister(d.Instruction.Op0Register, d.Op == Op.Lsl ? state.Limit : descriptor >> 32 & 0x00F0_FF00);
        WriteFlags(FlagZf, FlagZf);
    }

    /// <summary>
    /// VERR/VERW: ZF = 1 when the selector names a code or data segment within its table that is readable (VERR: data,
    /// or code with R) or writable (VERW: data with W) and, unless it is conforming code, has DPL ≥ CPL and DPL ≥ RPL.
    /// Linux executes VERW on every return to user mode to clear CPU buffers (its MDS mitigation).
    /// </summary>
    private void VerifySegment(ref DecodedInstruction d)
    {
        var selector = (ushort)ReadOperand(ref d, 0);
        var descriptor = (selector & 0xFFFC) != 0 && TryDescriptorAddress(selector, out var address) ? ReadSystem(address, 8) : 0;
        var type = (int)(descriptor >> 40) & 0xF;
        var isCodeOrData = ((descriptor >> 44) & 1) != 0;
        var isCode = (type & 8) != 0;
        var dpl = (int)(descriptor >> 45) & 3;
        var conforming = isCode && (type & 4) != 0;
        var privileged = conforming || (dpl >= Cpl && dpl >= (selector & 3));
        var allowed = d.Instruction.Mnemonic == Mnemonic.Verw ? !isCode && (type & 2) != 0 : !isCode || (type & 2) != 0;
        WriteFlags(FlagZf, descriptor != 0 && isCodeOrData && privileged && allowed ? FlagZf : 0);
    }
}
