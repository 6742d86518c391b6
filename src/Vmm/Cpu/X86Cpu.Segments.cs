using Hypervisor.GuestMmu.Walker;

namespace Hypervisor.Vmm.Cpu;

/// <summary>Descriptor tables, segment loads and the paging context handed to the MMU.</summary>
public sealed partial class X86Cpu
{
    /// <summary>Pushes CR0/CR3/CR4/EFER/CPL/RFLAGS.AC to the vCPU's <see cref="MmuContext"/> (which applies the TLB flush rules).</summary>
    private void UpdatePaging(bool flushAll = false)
    {
        _mmu.SetContext(new PagingContext
        {
            Cr0 = _cr0,
            Cr3 = _cr3,
            Cr4 = _cr4,
            Efer = _efer,
            Rflags = _rflags,
            Cpl = Cpl,
        });
        if (flushAll)
        {
            _mmu.Tlb.FlushAll();
        }
    }

    private void UpdateStackSize()
    {
        _stackAddressSize = _bitness == 64 ? 8 : (_segments[(int)SegmentRegister.Ss].Attributes & SegmentState.AttrDb) != 0 ? 4 : 2;
    }

    /// <summary>Reads the 8-byte descriptor <paramref name="selector"/> names (#GP(selector) beyond the table's limit).</summary>
    private ulong ReadDescriptor(ushort selector, out ulong address)
    {
        if (!TryDescriptorAddress(selector, out address))
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(selector & 0xFFFC));
        }

        return ReadSystem(address, 8);
    }

    /// <summary>The linear address of <paramref name="selector"/>'s descriptor; false when it lies beyond its table's limit.</summary>
    private bool TryDescriptorAddress(ushort selector, out ulong address)
    {
        var local = (selector & 4) != 0;
        var tableBase = local ? _segments[(int)SegmentRegister.Ldtr].Base : _gdtBase;
        var tableLimit = local ? _segments[(int)SegmentRegister.Ldtr].Limit : _gdtLimit;
        var offset = (ulong)(selector & ~7);
        address = tableBase + offset;
        return offset + 7 <= tableLimit;
    }

    /// <summary>MOV/POP to a data or stack segment register, or a CS load by a far transfer, with the protected-mode checks.</summary>
    private void LoadSegment(SegmentRegister segment, ushort selector)
    {
        if ((_cr0 & Cr0Pe) == 0)
        {
            LoadRealModeSegment(segment, selector);
            return;
        }

        if ((selector & 0xFFFC) == 0)
        {
            if (segment == SegmentRegister.Cs || (segment == SegmentRegister.Ss && (_bitness != 64 || Cpl == 3)))
            {
                RaiseFault(ExceptionVector.GeneralProtection, 0);
            }

            _segments[(int)segment] = new SegmentState { Selector = selector };
            UpdateStackSize();
            return;
        }

        var descriptor = ReadDescriptor(selector, out var address);
        var state = SegmentState.FromDescriptor(selector, descriptor);
        var isCode = (state.Type & 8) != 0;
        if ((state.Attributes & SegmentState.AttrS) == 0
            || (segment == SegmentRegister.Cs && !isCode)
            || (segment == SegmentRegister.Ss && (isCode || (state.Type & 2) == 0))
            || (segment != SegmentRegister.Cs && segment != SegmentRegister.Ss && isCode && (state.Type & 2) == 0))
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(selector & 0xFFFC));
        }

        if ((state.Attributes & SegmentState.AttrP) == 0)
        {
            RaiseFault(segment == SegmentRegister.Ss ? ExceptionVector.StackFault : ExceptionVector.SegmentNotPresent, (uint)(selector & 0xFFFC));
        }

        if ((state.Type & 1) == 0)
        {
            WriteSystem(address + 5, 1, (descriptor >> 40 & 0xFF) | 1);
            state.Attributes |= 1;
        }

        if (segment == SegmentRegister.Cs)
        {
            // A far transfer keeps the CPL; the new CS's RPL becomes the selector's CPL field.
            state.Selector = (ushort)((selector & ~3) | state.Dpl);
        }

        _segments[(int)segment] = state;
        if (segment == SegmentRegister.Cs)
        {
            UpdateMode();
            UpdatePaging();
        }

        UpdateStackSize();
    }

    private void LoadSystemSegment(SegmentRegister segment, ushort selector)
    {
        if ((_cr0 & Cr0Pe) == 0)
        {
            RaiseFault(ExceptionVector.InvalidOpcode);
        }

        if ((selector & 0xFFFC) == 0)
        {
            if (segment == SegmentRegister.Tr)
            {
                RaiseFault(ExceptionVector.GeneralProtection, 0);
            }

            _segments[(int)segment] = new SegmentState { Selector = selector };
            return;
        }

        if ((selector & 4) != 0)
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(selector & 0xFFFC));
        }

        var descriptor = ReadDescriptor(selector, out var address);
        var state = SegmentState.FromDescriptor(selector, descriptor);
        var wantType = segment == SegmentRegister.Tr ? state.Type is 9 or 1 : state.Type == 2;
        if ((state.Attributes & SegmentState.AttrS) != 0 || !wantType)
        {
            RaiseFault(ExceptionVector.GeneralProtection, (uint)(selector & 0xFFFC));
        }

        if ((state.Attributes & SegmentState.AttrP) == 0)
        {
            RaiseFault(ExceptionVector.SegmentNotPresent, (uint)(selector & 0xFFFC));
        }

        if ((_efer & EferLma) != 0)
        {
            state.Base |= ReadSystem(address + 8, 4) << 32;
        }

        if (segment == SegmentRegister.Tr)
        {
            WriteSystem(address + 5, 1, (descriptor >> 40 & 0xFF) | 2);
            state.Attributes |= 2;
        }

        _segments[(int)segment] = state;
    }
}
