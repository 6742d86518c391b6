using System.Buffers.Binary;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Tests.Mmu;

namespace Hypervisor.GuestMmu.Tests.Walker;

/// <summary>
/// Lays out x86-64 4-level guest page tables in a <see cref="TestVm"/>'s guest memory (written through the host
/// process, so no EPT entry exists for them until a walk faults them in). Tables are taken from consecutive guest
/// pages starting at <c>firstTablePage</c>; the PML4 is the first.
/// </summary>
internal sealed class GuestPageTables
{
    public const ulong P = 1UL << 0;
    public const ulong W = 1UL << 1;
    public const ulong U = 1UL << 2;
    public const ulong A = 1UL << 5;
    public const ulong D = 1UL << 6;
    public const ulong PS = 1UL << 7;
    public const ulong G = 1UL << 8;
    public const ulong NX = 1UL << 63;
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;

    private readonly TestVm _vm;
    private ulong _nextTablePage;

    public GuestPageTables(TestVm vm, ulong firstTablePage = 1, ulong upperFlags = P | W | U)
    {
        _vm = vm;
        _nextTablePage = firstTablePage + 1;
        Cr3 = TestVm.GpaOf(firstTablePage);
        UpperFlags = upperFlags;
    }

    /// <summary>The PML4's gpa.</summary>
    public Gpa Cr3 { get; }

    /// <summary>Flags given to new non-leaf entries.</summary>
    public ulong UpperFlags { get; }

    public void Map4K(ulong gva, ulong gpa, ulong flags) => Map(gva, gpa, flags, 1);

    public void Map2M(ulong gva, ulong gpa, ulong flags) => Map(gva, gpa, flags | PS, 2);

    public void Map1G(ulong gva, ulong gpa, ulong flags) => Map(gva, gpa, flags | PS, 3);

    /// <summary>The gpa of the entry for <paramref name="gva"/> at <paramref name="level"/> (4 = PML4E).</summary>
    public Gpa EntryGpa(ulong gva, int level)
    {
        var table = Cr3.Value;
        for (var l = 4; ; l--)
        {
            var entryGpa = table + (Index(gva, l) * 8);
            if (l == level)
            {
                return new Gpa(entryGpa);
            }

            var entry = Read(new Gpa(entryGpa));
            Assert.That(entry & P, Is.Not.Zero, $"no table below level {l} for 0x{gva:x}");
            table = entry & AddressMask;
        }
    }

    public ulong Entry(ulong gva, int level) => Read(EntryGpa(gva, level));

    public void SetEntry(ulong gva, int level, ulong value) => Write(EntryGpa(gva, level), value);

    public void UpdateEntry(ulong gva, int level, Func<ulong, ulong> change) => SetEntry(gva, level, change(Entry(gva, level)));

    public ulong Read(Gpa gpa)
    {
        Span<byte> bytes = stackalloc byte[8];
        _vm.Mm.Read(_vm.Base + gpa.Value, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    public void Write(Gpa gpa, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        _vm.Mm.Write(_vm.Base + gpa.Value, bytes);
    }

    private static ulong Index(ulong gva, int level) => (gva >> (12 + (9 * (level - 1)))) & 511;

    private void Map(ulong gva, ulong gpa, ulong flags, int leafLevel)
    {
        var table = Cr3.Value;
        for (var level = 4; level > leafLevel; level--)
        {
            var entryGpa = new Gpa(table + (Index(gva, level) * 8));
            var entry = Read(entryGpa);
            if ((entry & P) == 0)
            {
                var page = _nextTablePage++;
                Assert.That(page, Is.LessThan(_vm.Pages), "out of guest pages for page tables");
                entry = TestVm.GpaOf(page).Value | UpperFlags;
                Write(entryGpa, entry);
            }

            table = entry & AddressMask;
        }

        Write(new Gpa(table + (Index(gva, leafLevel) * 8)), gpa | flags);
    }
}
