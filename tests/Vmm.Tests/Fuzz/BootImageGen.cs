using System.Buffers.Binary;
using CsCheck;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Tests.Boot;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// CsCheck generators of boot images: structured ELF32/ELF64 executables (random PT_LOAD layouts, Xen PVH notes,
/// multiboot headers), bzImages with random setup-header fields, mutations of both (bit flips, boundary-value field
/// overwrites, truncation, insertion and deletion) and plain random bytes, each with a random boot request.
/// </summary>
internal static class BootImageGen
{
    private static readonly ulong[] BoundaryAddresses =
    [
        0, 1, 0x500, 0xFFF, 0x1000, 0x6000, 0x7000, 0x9000, 0x20000, 0x9FC00, 0xE0000, 0xFFFFF, 0x10_0000, 0x20_0000,
        0x40_0000, 0x100_0000, 0x3FFF_F000, 0x4000_0000, 0x7FFF_FFFF, 0xFFFF_F000, 0xFFFF_FFFF, 0x1_0000_0000,
        0x1_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_F000, ulong.MaxValue - 1, ulong.MaxValue,
    ];

    private static readonly ulong[] BoundaryValues =
    [
        0, 1, 2, 3, 4, 7, 8, 0x10, 0x7F, 0x80, 0xFF, 0x100, 0x200, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000,
        0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue,
    ];

    private static readonly ulong[] RamSizes =
    [
        0x1000, 0x1_0000, 0x9_FC00, 0x10_0000, 0x20_0000, 0x40_0000, 0x100_0000, 0x400_0000, 0x4000_0000, 0x1_0000_0000, 0x1_4000_0000,
    ];

    private static readonly string[] CommandLines =
    [
        string.Empty, "console=ttyS0 panic=-1", new string('x', 255), new string('x', 2047), new string('x', 4095), new string('x', 4096),
        "root=/dev/vda\0init=/bin/sh", "ünïcødé λ", new string('é', 2048),
    ];

    /// <summary>An address: a boundary value, a low address, a page-aligned one in the first 64 MiB, or any.</summary>
    public static readonly Gen<ulong> Address = Gen.Frequency(
        (4, Gen.OneOf(BoundaryAddresses)),
        (4, Gen.ULong[0, 0x100_0000]),
        (2, Gen.ULong[0x10_0000, 0x400_0000].Select(a => a & ~0xFFFUL)),
        (1, Gen.ULong));

    /// <summary>A field value: a boundary value or any.</summary>
    public static readonly Gen<ulong> Value = Gen.Frequency((3, Gen.OneOf(BoundaryValues)), (1, Gen.ULong));

    private static readonly Gen<ElfSegmentRecipe> Segment =
        from type in Gen.Frequency((12, Gen.Const(1u)), (1, Gen.Const(0u)), (1, Gen.Const(4u)), (1, Gen.UInt))
        from paddr in Address
        from vaddr in Gen.Frequency((4, Gen.Const((ulong?)null)), (1, Address.Select(a => (ulong?)a)))
        from dataLength in Gen.Frequency((6, Gen.Int[1, 0x600]), (1, Gen.Const(0)), (1, Gen.Int[0x600, 0x1000]))
        from memoryExtra in Gen.Frequency((6, Gen.ULong[0, 0x4000]), (1, Gen.Const(0UL)), (1, Address))
        from shrink in Gen.Int[0, 15]
        from fileSize in Gen.Frequency((10, Gen.Const((ulong?)null)), (2, Gen.ULong[0, 0x3000].Select(v => (ulong?)v)), (1, Value.Select(v => (ulong?)v)))
        from offset in Gen.Frequency((12, Gen.Const((ulong?)null)), (1, Gen.OneOf<ulong?>(0, 0x40, 0xFFF, 0x1800, 0x3000, ulong.MaxValue, 1UL << 63)))
        from gap in Gen.ULong[0, 0x3000]
        select new ElfSegmentRecipe(type, paddr, vaddr, dataLength, memoryExtra, shrink == 0, fileSize, offset, gap);

    /// <summary>A structured ELF32 or ELF64 executable.</summary>
    public static readonly Gen<byte[]> Elf =
        from is64 in Gen.Bool
        from sequential in Gen.Int[0, 9].Select(n => n < 7)
        from baseAddress in Gen.Frequency((3, Gen.OneOf(0x10_0000UL, 0x20_0000UL, 0x100_0000UL)), (1, Address))
        from segments in Segment.Array[1, 4]
        from entryChoice in Gen.Int[0, 9]
        from entryOffset in Gen.ULong[0, 0x2000]
        from randomEntry in Address
        from pvh in Gen.Int[0, 6]
        from pvhValue in Address
        from multiboot in Gen.Int[0, 5]
        from multibootFlags in Gen.Frequency((3, Gen.OneOf(0u, 1u, 2u, 3u, 4u, 7u)), (1, Gen.OneOf(8u, 0xFFFFu, 0x1_0000u)), (1, Gen.UInt))
        from multibootFields in Gen.ULong[0, 0x2000].Array[5]
        select BuildElf(is64, sequential, baseAddress, segments, entryChoice, entryOffset, randomEntry, pvh, pvhValue, multiboot, multibootFlags, multibootFields);

    /// <summary>A bzImage with random setup-header fields (most near a valid 2.15 kernel's).</summary>
    public static readonly Gen<byte[]> BzImage =
        from setupSects in Gen.Frequency((6, Gen.Const((byte)4)), (2, Gen.Byte[0, 8]), (1, Gen.Byte))
        from version in Gen.Frequency((4, Gen.OneOf<ushort>(0x020B, 0x020C, 0x020D, 0x020F, 0x0215)), (1, Gen.UShort))
        from jump in Gen.Frequency((6, Gen.Const((byte)0x6A)), (2, Gen.Byte[0x5E, 0x90]), (1, Gen.Byte))
        from loadFlags in Gen.Frequency((6, Gen.Const((byte)1)), (2, Gen.Byte))
        from initrdAddrMax in Gen.Frequency((3, Gen.OneOf(0u, 0xFFFu, 0x7FFF_FFFFu, 0xFFFF_FFFFu)), (1, Gen.UInt))
        from alignment in Gen.Frequency((4, Gen.Int[0, 31].Select(k => 1u << k)), (1, Gen.OneOf(0u, 3u, 0x30_0000u)), (1, Gen.UInt))
        from xloadFlags in Gen.Frequency((6, Gen.OneOf<ushort>(1, 3, 0x1F)), (1, Gen.UShort))
        from cmdlineSize in Gen.Frequency((3, Gen.OneOf(0u, 1u, 255u, 2047u, 4095u, 4096u, uint.MaxValue)), (1, Gen.UInt))
        from prefAddress in Gen.Frequency((6, Gen.ULong[1, 32].Select(k => k << 20)), (2, Address))
        from initSize in Gen.Frequency((3, Gen.OneOf(0u, 0x1000u, 0x20_0000u, 0x100_0000u, 0x7FFF_FFFFu, uint.MaxValue)), (1, Gen.UInt))
        from kernelLength in Gen.Frequency((6, Gen.Int[0x201, 0x1800]), (1, Gen.Int[0, 0x201]))
        from sysSize in Gen.Frequency((6, Gen.Const((uint?)null)), (1, Gen.OneOf<uint?>(0, 1, 0x20, 0x1000_0000, uint.MaxValue)), (1, Gen.UInt.Select(v => (uint?)v)))
        from trailing in Gen.Int[0, 0x100]
        select new BzImageBuilder
        {
            SetupSects = setupSects,
            Version = version,
            JumpDisplacement = jump,
            LoadFlags = loadFlags,
            InitrdAddrMax = initrdAddrMax,
            KernelAlignment = alignment,
            XLoadFlags = xloadFlags,
            CmdlineSize = cmdlineSize,
            PrefAddress = prefAddress,
            InitSize = initSize,
            Kernel = ElfBuilder.Pattern(kernelLength),
            SysSize = sysSize,
            Trailing = trailing,
        }.Build();

    private static readonly Gen<ImageEdit> EditGen =
        from kind in Gen.Int[0, 8]
        from headerBiased in Gen.Int[0, 9].Select(n => n < 6)
        from position in Gen.Double.Unit
        from value in Value
        from width in Gen.OneOf(1, 2, 4, 8)
        select new ImageEdit(kind, headerBiased, position, value, width);

    /// <summary>A valid-looking ELF or bzImage with 1–8 edits.</summary>
    public static readonly Gen<(string Kind, byte[] File)> Mutated =
        from bz in Gen.Bool
        from source in bz ? BzImage : Elf
        from edits in EditGen.Array[1, 8]
        select (bz ? "mutated bzImage" : "mutated elf", Mutate(source, edits));

    /// <summary>Random bytes, half of them behind an ELF magic or with "HdrS" at 0x202.</summary>
    public static readonly Gen<byte[]> Bytes =
        from magic in Gen.Int[0, 3]
        from bytes in Gen.Byte.Array[0, 0x1400]
        select WithMagic(bytes, magic);

    /// <summary>Any image with a random boot request.</summary>
    public static readonly Gen<BootFuzzCase> Case =
        from image in Gen.Frequency(
            (3, Elf.Select(f => ("elf", f))),
            (2, BzImage.Select(f => ("bzImage", f))),
            (4, Mutated),
            (1, Bytes.Select(f => ("bytes", f))))
        from ram in Gen.OneOf(RamSizes)
        from protocol in Gen.Frequency((4, Gen.Const(BootProtocol.Auto)), (1, Gen.Enum<BootProtocol>()))
        from commandLine in Gen.Frequency((4, Gen.Const("console=ttyS0")), (1, Gen.OneOf(CommandLines)))
        from initrd in Gen.Frequency((3, Gen.Const(0)), (2, Gen.Int[1, 0x3000]), (1, Gen.OneOf(0x10_0000, 0x20_0000)))
        from acpi in Gen.Bool
        select new BootFuzzCase(image.Item1, image.Item2, ram, protocol, commandLine, initrd, acpi);

    private static byte[] BuildElf(
        bool is64, bool sequential, ulong baseAddress, ElfSegmentRecipe[] recipes, int entryChoice, ulong entryOffset, ulong randomEntry,
        int pvh, ulong pvhValue, int multiboot, uint multibootFlags, ulong[] multibootFields)
    {
        var specs = new List<ElfSegmentSpec>();
        var cursor = baseAddress & ~0xFFFUL;
        foreach (var r in recipes)
        {
            var paddr = sequential ? cursor : r.PhysicalAddress;
            var memory = r.Shrink ? (ulong)r.DataLength / 2 : Math.Max(unchecked((ulong)r.DataLength + r.MemoryExtra), r.FileSize ?? 0);
            specs.Add(new ElfSegmentSpec
            {
                Type = sequential ? 1 : r.Type,
                PhysicalAddress = paddr,
                VirtualAddress = r.VirtualAddress,
                Data = ElfBuilder.Pattern(r.DataLength),
                MemorySize = memory,
                FileSize = r.FileSize,
                Offset = r.Offset,
            });
            cursor = unchecked((paddr + memory + r.Gap + 0xFFF) & ~0xFFFUL);
        }

        var first = specs[0];
        var firstSize = Math.Max(first.MemorySize ?? 1, 1);
        var entry = entryChoice < 8
            ? unchecked(specs[entryChoice % specs.Count].PhysicalAddress + (entryOffset % Math.Max(specs[entryChoice % specs.Count].MemorySize ?? 1, 1)))
            : randomEntry;
        var pvhEntry = pvh == 1 ? (uint)unchecked(first.PhysicalAddress + (entryOffset % firstSize)) : (uint)pvhValue;
        switch (pvh)
        {
            case 1 or 2:
                specs.Add(ElfSegmentSpec.Note(ElfBuilder.Note("GNU", 3, [1, 2, 3, 4]), ElfBuilder.PvhNote(pvhEntry)));
                break;
            case 3:
                specs.Add(ElfSegmentSpec.Note(ElfBuilder.Note("Xen", ElfImage.XenElfNotePhys32Entry, BitConverter.GetBytes(pvhValue))));
                break;
            case 4:
                specs.Add(ElfSegmentSpec.Note(ElfBuilder.Note("Xen", ElfImage.XenElfNotePhys32Entry, new byte[(int)(pvhValue % 13)])));
                break;
            case 5:
                var raw = ElfBuilder.PvhNote(pvhEntry);
                BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan((int)(pvhValue % 3) * 4), (uint)(pvhValue >> 8));
                specs.Add(new ElfSegmentSpec { Type = 4, Data = raw, Align = (pvhValue & 1) == 0 ? 4UL : 8UL });
                break;
        }

        if (multiboot > 0 && first.Data.Length > 0)
        {
            uint[]? fields = null;
            var flags = multibootFlags;
            if (multiboot >= 3)
            {
                // Address fields relative to the first segment: header_addr is where the header (at the start of the
                // segment's data) lands, load_addr at or below it.
                flags |= MultibootHeader.AddressFieldsFlag;
                var header = (uint)first.PhysicalAddress;
                var load = header - (uint)(multibootFields[0] % 0x1001);
                var loadEnd = multiboot == 5 ? (uint)multibootFields[1] : (multibootFields[1] & 1) == 0 ? 0 : header + (uint)first.Data.Length;
                var bssEnd = (multibootFields[2] & 1) == 0 ? 0 : loadEnd + (uint)multibootFields[3];
                var entryAddress = multiboot == 5 ? (uint)multibootFields[4] : header + (uint)(multibootFields[4] % (ulong)first.Data.Length);
                fields = [header, load, loadEnd, bssEnd, entryAddress];
            }

            var checksum = multiboot == 2 ? (uint?)(multibootFlags ^ 0x5A5A) : null;
            var bytes = ElfBuilder.MultibootHeader(flags, checksum, fields);
            var data = first.Data.Length >= bytes.Length ? first.Data : new byte[bytes.Length];
            bytes.CopyTo(data, 0);
            specs[0] = new ElfSegmentSpec
            {
                Type = first.Type,
                PhysicalAddress = first.PhysicalAddress,
                VirtualAddress = first.VirtualAddress,
                Data = data,
                MemorySize = Math.Max(first.MemorySize ?? 0, (ulong)data.Length),
                FileSize = first.FileSize,
                Offset = first.Offset,
            };
        }

        return (is64 ? ElfBuilder.Elf64(entry, [.. specs]) : ElfBuilder.Elf32(entry, [.. specs])).Build();
    }

    private static byte[] Mutate(byte[] source, ImageEdit[] edits)
    {
        var file = new List<byte>(source);
        foreach (var edit in edits)
        {
            var span = edit.HeaderBiased ? Math.Min(file.Count, 0x300) : file.Count;
            var at = (int)(edit.Position * span);
            switch (edit.Kind)
            {
                case 0 when file.Count > 0:
                    at = Math.Min(at, file.Count - 1);
                    file[at] ^= (byte)(1 << (int)(edit.Value % 8));
                    break;
                case 1 or 2 or 3:
                    for (var i = 0; i < edit.Width && at + i < file.Count; i++)
                    {
                        file[at + i] = (byte)(edit.Value >> (8 * i));
                    }

                    break;
                case 4:
                    file.RemoveRange(at, file.Count - at);
                    break;
                case 5:
                    file.InsertRange(at, Enumerable.Repeat((byte)edit.Value, edit.Width * 4));
                    break;
                case 6:
                    file.RemoveRange(at, Math.Min(edit.Width * 4, file.Count - at));
                    break;
                case 8:
                    var cut = (int)Math.Min((ulong)file.Count, 1 + (edit.Value % 0x1000));
                    file.RemoveRange(file.Count - cut, cut);
                    break;
                default:
                    file.AddRange(BitConverter.GetBytes(edit.Value));
                    break;
            }
        }

        return [.. file];
    }

    private static byte[] WithMagic(byte[] bytes, int magic)
    {
        if (magic == 1 && bytes.Length >= 4)
        {
            bytes[0] = 0x7F;
            bytes[1] = (byte)'E';
            bytes[2] = (byte)'L';
            bytes[3] = (byte)'F';
        }
        else if (magic == 2 && bytes.Length >= LinuxSetupHeader.MagicOffset + 4)
        {
            "HdrS"u8.CopyTo(bytes.AsSpan(LinuxSetupHeader.MagicOffset));
        }

        return bytes;
    }
}
