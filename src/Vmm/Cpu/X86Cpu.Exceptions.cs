namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// Exception and interrupt delivery through the IDT (64-bit 16-byte gates with IST and RSP0 from the TSS; 32-bit
/// 8-byte gates with ESP0/SS0), IRET, and the double/triple-fault escalation. A fault raised while delivering
/// an event becomes #DF (without the benign/contributory classification); a fault while delivering #DF shuts
/// the machine down with a report.
/// </summary>
public sealed partial class X86Cpu
{
    private string? _lastFaultDetail;

    private void DeliverException(GuestException exception)
    {
        _exceptions++;
        if (exception.Vector == ExceptionVector.PageFault)
        {
            _pageFaults++;
        }

        var first = $"{exception.Vector}{(exception.ErrorCode is { } code ? $" (error code 0x{code:x})" : "")} at RIP 0x{_currentIp:x}"
            + (exception.Vector == ExceptionVector.PageFault ? $", CR2 0x{_cr2:x}" : "")
            + (_lastFaultDetail is { } detail ? $": {detail}" : "");
        _lastFaultDetail = null;
        try
        {
            DeliverEvent((byte)exception.Vector, exception.ErrorCode, _rip, software: false);
            return;
        }
        catch (GuestException second)
        {
            first += $"; then {second.Vector}{(second.ErrorCode is { } c ? $" (0x{c:x})" : "")} delivering it";
        }

        try
        {
            _exceptions++;
            DeliverEvent((byte)ExceptionVector.DoubleFault, 0, _rip, software: false);
        }
        catch (GuestException third)
        {
            _pendingExit = new CpuExit(
                CpuExitReason.TripleFault,
                $"triple fault: {first}; then {third.Vector} delivering #DF");
        }
    }

    private void DeliverSoftwareInterrupt(byte vector)
    {
        _exceptions++;
        DeliverEvent(vector, null, _rip, software: true);
    }

    private void DeliverEvent(byte vector, uint? errorCode, ulong returnRip, bool software)
    {
        if ((_cr0 & Cr0Pe) == 0)
        {
            DeliverRealModeEvent(vector, returnRip);
            return;
        }

        var longMode = (_efer & EferLma) != 0;
        var gateSize = longMode ? 16u : 8u;
        var idtError = (uint)(vector * 8) | 2;
        if ((vector * gateSize) + gateSize - 1 > _idtLimit)
        {
            RaiseFault(ExceptionVector.GeneralProtection, idtError);
        }

        var gate = ReadSystem(_idtBase + (vector * gateSize), 8);
        var type = (int)((gate >> 40) & 0xF);
        var gateDpl = (int)((gate >> 45) & 3);
        if (((gate >> 47) & 1) == 0)
        {
            RaiseFault(ExceptionVector.SegmentNotPresent, idtError);
        }

        if (software && gateDpl < Cpl)
        {
            RaiseFault(ExceptionVector.GeneralProtection, idtError);
        }

        var offset = (gate & 0xFFFF) | ((gate >> 32) & 0xFFFF_0000);
        var selector = (ushort)((gate >> 16) & 0xFFFF);
        var interruptGate = (type & 1) == 0;
        if (longMode)
        {
            if (type is not (0xE or 0xF)) { RaiseFault(ExceptionVector.GeneralProtection, idtError); }
            offset |= ReadSystem(_idtBase + (vector * gateSize) + 8, 4) << 32;
        }
        else if (type is not (0xE or 0xF or 0x6 or 0x7))
        {
            FailVm($"IDT vector {vector} is a task gate (type 0x{type:x}): task switches are not supported");
        }

        var target = ReadDescriptor(selector, out _);
        var targetState = SegmentState.FromDescriptor(selector, target);
        if ((targetState.Attributes & SegmentState.AttrP) == 0 || (targetState.Type & 8) == 0)
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(selector & 0xFFFC));
        }

        var oldCpl = Cpl;
        var newCpl = targetState.Dpl;
        var flags = GetRflags();
        var oldCs = _segments[(int)SegmentRegister.Cs].Selector;
        var oldSs = _segments[(int)SegmentRegister.Ss].Selector;
        var oldRsp = Gpr(4);
        var tss = _segments[(int)SegmentRegister.Tr].Base;
        var ist = longMode ? (int)((gate >> 32) & 7) : 0;

        if (longMode)
        {
            var rsp = oldRsp;
            if (ist != 0) { rsp = ReadSystem(tss + 0x24 + (ulong)((ist - 1) * 8), 8); }
            else if (newCpl < oldCpl) { rsp = ReadSystem(tss + 4 + (ulong)(newCpl * 8), 8); }
            rsp &= ~0xFUL;
            Span<ulong> frame = [oldSs, oldRsp, flags, oldCs, returnRip, errorCode ?? 0];
            var count = errorCode is null ? 5 : 6;
            for (var n = 0; n < count; n++)
            {
                rsp -= 8;
                WriteSystem(rsp, 8, frame[n]);
            }

            if (newCpl < oldCpl)
            {
                _segments[(int)SegmentRegister.Ss] = new SegmentState { Selector = (ushort)newCpl };
            }

            Gpr(4) = rsp;
            LoadSegment(SegmentRegister.Cs, selector);
            _rip = offset;
        }
        else
        {
            var size = (type & 8) != 0 ? 4 : 2;
            var esp = (uint)oldRsp;
            var ssBase = _segments[(int)SegmentRegister.Ss].Base;
            ushort newSs = 0;
            if (newCpl < oldCpl)
            {
                esp = (uint)ReadSystem(tss + 4 + (ulong)(newCpl * 8), 4);
                newSs = (ushort)ReadSystem(tss + 8 + (ulong)(newCpl * 8), 2);
                var ssDescriptor = SegmentState.FromDescriptor(newSs, ReadDescriptor(newSs, out _));
                ssBase = ssDescriptor.Base;
            }

            void PushFrame(ulong value)
            {
                esp -= (uint)size;
                WriteSystem((uint)(ssBase + esp), size, value);
            }

            if (newCpl < oldCpl)
            {
                PushFrame(oldSs);
                PushFrame(oldRsp);
            }

            PushFrame(flags);
            PushFrame(oldCs);
            PushFrame(returnRip);
            if (errorCode is { } code) { PushFrame(code); }
            if (newCpl < oldCpl) { LoadSegment(SegmentRegister.Ss, newSs); }
            WriteGpr(4, 4, esp);
            LoadSegment(SegmentRegister.Cs, selector);
            _rip = (uint)offset;
        }

        var cleared = FlagTf | FlagNt | FlagRf | (interruptGate ? FlagIf : 0);
        SetRflags(flags & ~cleared);
        UpdatePaging();
    }

    private void InterruptReturn(ref DecodedInstruction d)
    {
        var size = d.Instruction.Code switch
        {
            Iced.Intel.Code.Iretq => 8,
            Iced.Intel.Code.Iretw => 2,
            _ => 4,
        };
        if ((_cr0 & Cr0Pe) == 0)
        {
            RealModeInterruptReturn(size);
            return;
        }

        var oldCpl = Cpl;
        var rip = Pop(size);
        var cs = (ushort)Pop(size);
        var flags = Pop(size);
        var returnToOuter = (cs & 3) > oldCpl;
        ulong rsp = 0;
        ushort ss = 0;
        if ((_efer & EferLma) != 0 && _bitness == 64 || returnToOuter)
        {
            rsp = Pop(size);
            ss = (ushort)Pop(size);
        }

        LoadSegment(SegmentRegister.Cs, cs);
        var keep = oldCpl == 0 ? 0UL : (3UL << 12) | (oldCpl > (int)((_rflags >> 12) & 3) ? FlagIf : 0);
        if (size == 2) { keep |= ~0xFFFFUL; }
        SetRflags((flags & ~keep) | (_rflags & keep));
        if ((_efer & EferLma) != 0 && size == 8 || returnToOuter)
        {
            if ((ss & 0xFFFC) == 0 && _bitness == 64)
            {
                _segments[(int)SegmentRegister.Ss] = new SegmentState { Selector = ss };
            }
            else
            {
                LoadSegment(SegmentRegister.Ss, ss);
            }

            Gpr(4) = rsp;
        }

        _rip = _bitness == 64 ? rip : (uint)rip;
        if (_nmiBlocked)
        {
            _nmiBlocked = false;
            _eventAt = 0;
        }

        UpdateStackSize();
        UpdatePaging();
    }
}
