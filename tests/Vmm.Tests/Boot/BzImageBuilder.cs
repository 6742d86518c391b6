using System.Buffers.Binary;

namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>
/// Builds a synthetic bzImage with its setup-header fields at the offsets Documentation/x86/boot.rst gives; the
/// header bytes it does not set carry a recognisable filler so that a copy of the header can be checked byte by byte.
/// </summary>
internal sealed class BzImageBuilder
{
    public byte SetupSects { get; set; } = 4;

    public ushort BootFlag { get; set; } = 0xAA55;

    public string Magic { get; set; } = "HdrS";

    public ushort Version { get; set; } = 0x020F;

    public byte JumpDisplacement { get; set; } = 0x6A;

    public byte LoadFlags { get; set; } = 0x01;

    public uint InitrdAddrMax { get; set; } = 0x7FFF_FFFF;

    public uint KernelAlignment { get; set; } = 0x20_0000;

    public byte RelocatableKernel { get; set; } = 1;

    public ushort XLoadFlags { get; set; } = 0x0001;

    public uint CmdlineSize { get; set; } = 2047;

    public ulong PrefAddress { get; set; } = 0x40_0000;

    public uint InitSize { get; set; } = 0x20_0000;

    public byte[] Kernel { get; set; } = ElfBuilder.Pattern(0x1000);

    /// <summary>syssize; null: the kernel's length in paragraphs.</summary>
    public uint? SysSize { get; set; }

    /// <summary>Bytes after the kernel (Debian's files have some).</summary>
    public int Trailing { get; set; } = 0x40;

    public int KernelOffset => ((SetupSects == 0 ? 4 : SetupSects) + 1) * 512;

    public byte[] Build()
    {
        var file = new byte[KernelOffset + Kernel.Length + Trailing];
        var s = file.AsSpan();
        for (var i = 0x1F1; i < KernelOffset; i++)
        {
            file[i] = (byte)(0xA0 + (i % 0x3F));
        }

        s[0x1F1] = SetupSects;
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x1F4..], SysSize ?? (uint)((Kernel.Length + 15) / 16));
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x1FE..], BootFlag);
        s[0x200] = 0xEB;
        s[0x201] = JumpDisplacement;
        System.Text.Encoding.ASCII.GetBytes(Magic).CopyTo(s[0x202..]);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x206..], Version);
        s[0x210] = 0x00;
        s[0x211] = LoadFlags;
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x218..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x21C..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x228..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x22C..], InitrdAddrMax);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x230..], KernelAlignment);
        s[0x234] = RelocatableKernel;
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x236..], XLoadFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x238..], CmdlineSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x258..], PrefAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x260..], InitSize);
        Kernel.CopyTo(s[KernelOffset..]);
        return file;
    }
}
