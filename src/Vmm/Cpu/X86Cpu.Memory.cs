using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// Guest memory as instructions see it: segmentation (flat; bases only, no limit checks), the soft-TLB fast
/// path for accesses inside one page, and a slow path through <see cref="MmuContext"/> that walks, resolves EPT
/// violations, emulates MMIO and turns failures into #PF/#GP/#SS.
/// </summary>
public sealed unsafe partial class X86Cpu // unsafe: TLB hits are host pointers into guest RAM.
{
    private int _stackAddressSize = 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong SegmentBase(int segment) =>
        _bitness == 64 && segment < (int)SegmentRegister.Fs ? 0 : _segments[segment].Base;

    /// <summary>The linear address of the instruction's memory operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Linear(ref DecodedInstruction d) => ToLinear(EffectiveAddress(ref d), d.Segment);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ToLinear(ulong offset, int segment)
    {
        var linear = offset + SegmentBase(segment);
        return _bitness == 64 ? linear : (uint)linear;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong EffectiveAddress(ref DecodedInstruction d)
    {
        var address = d.Displacement;
        if (d.Base != DecodedInstruction.NoRegister)
        {
            address += Gpr(d.Base);
        }

        if (d.Index != DecodedInstruction.NoRegister)
        {
            address += Gpr(d.Index) << d.ScaleShift;
        }

        return d.AddressSize switch
        {
            8 => address,
            4 => (uint)address,
            _ => (ushort)address,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadMemory(ulong linear, int size)
    {
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Read, out var host))
        {
            return size switch
            {
                1 => *host,
                2 => Unsafe.ReadUnaligned<ushort>(host),
                4 => Unsafe.ReadUnaligned<uint>(host),
                _ => Unsafe.ReadUnaligned<ulong>(host),
            };
        }

        return ReadMemorySlow(linear, size, GuestAccess.Read, SegmentRegister.Ds);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteMemory(ulong linear, int size, ulong value)
    {
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Write, out var host))
        {
            switch (size)
            {
                case 1: *host = (byte)value; break;
                case 2: Unsafe.WriteUnaligned(host, (ushort)value); break;
                case 4: Unsafe.WriteUnaligned(host, (uint)value); break;
                default: Unsafe.WriteUnaligned(host, value); break;
            }

            return;
        }

        WriteMemorySlow(linear, size, value, GuestAccess.Write, SegmentRegister.Ds);
    }

    /// <summary>The host pointer for an aligned, in-page atomic access, or null when the slow path must be used.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* AtomicTarget(ulong linear, int size)
    {
        if ((linear & ((uint)size - 1)) == 0 && _tlb.TryLookup(new Gva(linear), GuestAccess.Write, out var host))
        {
            return host;
        }

        return null;
    }

    /// <summary>Reads a descriptor-table or TSS entry: an implicit supervisor access.</summary>
    private ulong ReadSystem(ulong linear, int size) => ReadMemorySlow(linear, size, GuestAccess.ImplicitSupervisor, SegmentRegister.Ds);

    /// <summary>Writes a descriptor-table entry (accessed/busy bits): an implicit supervisor access.</summary>
    private void WriteSystem(ulong linear, int size, ulong value) =>
        WriteMemorySlow(linear, size, value, GuestAccess.ImplicitSupervisor | GuestAccess.Write, SegmentRegister.Ds);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private ulong ReadMemorySlow(ulong linear, int size, GuestAccess access, SegmentRegister segment)
    {
        Span<byte> buffer = stackalloc byte[8];
        buffer = buffer[..size];
        var result = _mmu.Read(new Gva(linear), buffer, access);
        if (!result.IsOk)
        {
            FinishFailedAccess(result, linear, buffer, write: false, segment);
        }

        return size switch
        {
            1 => buffer[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(buffer),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(buffer),
            _ => BinaryPrimitives.ReadUInt64LittleEndian(buffer),
        };
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private void WriteMemorySlow(ulong linear, int size, ulong value, GuestAccess access, SegmentRegister segment)
    {
        Span<byte> buffer = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
        buffer = buffer[..size];
        var result = _mmu.Write(new Gva(linear), buffer, access);
        if (!result.IsOk)
        {
            FinishFailedAccess(result, linear, buffer, write: true, segment);
        }
    }

    private void FinishFailedAccess(in AccessResult result, ulong linear, Span<byte> buffer, bool write, SegmentRegister segment)
    {
        if (result.Status == TranslationStatus.EptMmio)
        {
            _mmio++;
            var gpa = result.Fault.Gpa.Value;
            var rest = buffer[result.BytesDone..];
            if (TryApicMmio(gpa, rest, write))
            {
                return;
            }

            // An MMIO access is a VM exit: outside guest mode, a shootdown does not wait for this vCPU.
            _mmu.Port.ExitGuest();
            if (write)
            {
                _bus.WriteMmio(gpa, rest);
            }
            else
            {
                _bus.ReadMmio(gpa, rest);
            }

            _mmu.Port.EnterGuest();
            return;
        }

        RaiseTranslationFault(result.Fault, linear, segment);
    }

    /// <summary>
    /// Turns a failed translation (the walker's result) into the guest exception or VM failure it stands for: the
    /// one point where a translation result becomes an unwinding signal.
    /// </summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RaiseTranslationFault(in TranslationResult failure, ulong linear, SegmentRegister segment)
    {
        switch (failure.Status)
        {
            case TranslationStatus.PageFault:
                _cr2 = failure.Gva.Value;
                RaiseFault(ExceptionVector.PageFault, (uint)failure.ErrorCode);
                break;
            case TranslationStatus.NonCanonical:
                RaiseFault(segment == SegmentRegister.Ss ? ExceptionVector.StackFault : ExceptionVector.GeneralProtection, 0);
                break;
            case TranslationStatus.EptMmio:
                FailVm($"instruction fetch from MMIO at gpa 0x{failure.Gpa.Value:x} (linear 0x{linear:x})");
                break;
            case TranslationStatus.Error when failure.Error == WalkError.UnsupportedPagingMode:
                var paging = _mmu.Context;
                FailVm(
                    $"guest paging mode {paging.Mode} (CR0=0x{paging.Cr0:x}, CR4=0x{paging.Cr4:x}, EFER=0x{paging.Efer:x}) is not supported by the walker: paging off, 32-bit, PAE and 4-level long mode are");
                break;
            case TranslationStatus.Error when failure.Error == WalkError.HostOutOfMemory:
                FailVm($"no frame for the guest's access at linear 0x{linear:x}, even after reclaim ({_mmu.Walker.LastFailureDetail})", CpuExitReason.HostOutOfMemory);
                break;
            case TranslationStatus.Error when failure.Error == WalkError.HostFault:
                FailVm($"memory fault: the guest's access at linear 0x{linear:x} was refused by the host ({_mmu.Walker.LastMemoryFault})", CpuExitReason.MemoryFault);
                break;
            case TranslationStatus.Error when failure.Error == WalkError.MemoryFailure:
                FailVm($"the guest's page at linear 0x{linear:x} could not be read back from swap ({_mmu.Walker.LastFailureDetail})", CpuExitReason.MemoryFailure);
                break;
        }

        FailVm($"memory access at linear 0x{linear:x} failed: {failure}");
    }

    /// <summary>Reads operand <paramref name="n"/>: a register, the memory operand, or an immediate (sign-extended as encoded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadOperand(ref DecodedInstruction d, int n)
    {
        var kind = n == 0 ? d.Kind0 : n == 1 ? d.Kind1 : OperandKind.Other;
        switch (kind)
        {
            case OperandKind.Register:
                return ReadGpr(n == 0 ? d.Reg0 : d.Reg1);
            case OperandKind.Memory:
                return ReadMemory(Linear(ref d), d.MemorySize);
            case OperandKind.Immediate:
                return d.Immediate;
            default:
                return ReadOperandSlow(ref d, n);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong ReadOperandSlow(ref DecodedInstruction d, int n)
    {
        var kind = d.Instruction.GetOpKind(n);
        if (kind == OpKind.Register)
        {
            return ReadRegister(d.Instruction.GetOpRegister(n));
        }

        if (kind == OpKind.Memory)
        {
            return ReadMemory(Linear(ref d), d.MemorySize);
        }

        return d.Instruction.GetImmediate(n);
    }

    /// <summary>Writes operand 0 (a register, with x86's zero-extension of 32-bit writes, or the memory operand).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteOperand0(ref DecodedInstruction d, ulong value)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            WriteGpr(d.Reg0, value);
        }
        else
        {
            WriteMemory(Linear(ref d), d.MemorySize, value);
        }
    }

    /// <summary>Reads operand 0 for a read-modify-write; <paramref name="linear"/> is its address when it is memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadDestination(ref DecodedInstruction d, out ulong linear)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            linear = 0;
            return ReadGpr(d.Reg0);
        }

        linear = Linear(ref d);
        return ReadMemory(linear, d.MemorySize);
    }

    /// <summary>Writes operand 0 back after <see cref="ReadDestination"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteDestination(ref DecodedInstruction d, ulong linear, ulong value)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            WriteGpr(d.Reg0, value);
        }
        else
        {
            WriteMemory(linear, d.MemorySize, value);
        }
    }

    private ulong StackLinear(ulong offset) => ToLinear(offset, (int)SegmentRegister.Ss);

    private ulong StackMask => _stackAddressSize == 8 ? ulong.MaxValue : _stackAddressSize == 4 ? 0xFFFF_FFFFUL : 0xFFFFUL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Push(ulong value, int size)
    {
        ref var rsp = ref Gpr(4);
        var mask = StackMask;
        var top = (rsp - (uint)size) & mask;
        WriteStack(top, size, value);
        rsp = (rsp & ~mask) | top;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Pop(int size)
    {
        ref var rsp = ref Gpr(4);
        var mask = StackMask;
        var value = ReadStack(rsp & mask, size);
        rsp = (rsp & ~mask) | ((rsp + (uint)size) & mask);
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteStack(ulong offset, int size, ulong value)
    {
        var linear = StackLinear(offset);
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Write, out var host))
        {
            if (size == 8) { Unsafe.WriteUnaligned(host, value); }
            else if (size == 4) { Unsafe.WriteUnaligned(host, (uint)value); }
            else { Unsafe.WriteUnaligned(host, (ushort)value); }
            return;
        }

        WriteMemorySlow(linear, size, value, GuestAccess.Write, SegmentRegister.Ss);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadStack(ulong offset, int size)
    {
        var linear = StackLinear(offset);
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Read, out var host))
        {
            return size == 8 ? Unsafe.ReadUnaligned<ulong>(host) : size == 4 ? Unsafe.ReadUnaligned<uint>(host) : Unsafe.ReadUnaligned<ushort>(host);
        }

        return ReadMemorySlow(linear, size, GuestAccess.Read, SegmentRegister.Ss);
    }
}
