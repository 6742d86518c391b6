using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class GuestBootTests
{
    private const ulong Ram = 16 << 20;

    private static LoadedImage Load(ElfBuilder builder, FakeGuestMemory memory) => ImageLoader.Load(ElfImage.Parse(builder.Build()), memory);

    private static ElfBuilder Elf64WithPvh() =>
        ElfBuilder.Elf64(0x100010, ElfSegmentSpec.Load(0x100000, ElfBuilder.Pattern(0x40)), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100000)));

    [Test]
    public void AutoPrefersPvhThenLongModeThenMultiboot()
    {
        var memory = new FakeGuestMemory(Ram);
        var multiboot32 = ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [.. ElfBuilder.MultibootHeader(0), 0xF4]));

        Assert.Multiple(() =>
        {
            Assert.That(GuestBoot.Resolve(Load(Elf64WithPvh(), memory), BootProtocol.Auto), Is.EqualTo(BootProtocol.Pvh));
            Assert.That(GuestBoot.Resolve(Load(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])), memory), BootProtocol.Auto), Is.EqualTo(BootProtocol.LongMode));
            Assert.That(GuestBoot.Resolve(Load(multiboot32, memory), BootProtocol.Auto), Is.EqualTo(BootProtocol.Multiboot));
            Assert.That(GuestBoot.Resolve(Load(Elf64WithPvh(), memory), BootProtocol.LongMode), Is.EqualTo(BootProtocol.LongMode));
        });
    }

    [Test]
    public void Elf32WithoutAnyProtocolIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])), memory);

        var error = Assert.Throws<BootImageException>(() => GuestBoot.Setup(memory, image, BootProtocol.Auto, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.MissingEntry));
            Assert.That(error.Message, Does.Contain("ELF32 image with entry 0x100000").And.Contain("multiboot header"));
        });
    }

    [Test]
    public void LongModePassesTheStartInfoInRdi()
    {
        var memory = new FakeGuestMemory(Ram);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.LongMode, "hello");

        Assert.Multiple(() =>
        {
            Assert.That(state.Rip, Is.EqualTo(0x100010), "e_entry, not the PVH entry");
            Assert.That(state.Rdi, Is.EqualTo(0x6000));
            Assert.That((state.Rsp, state.Cr3), Is.EqualTo((0x8FF0UL, 0x9000UL)));
            Assert.That(memory.Bytes(0x6000, 56), Is.EqualTo(PvhBoot.StartInfo(0x20000, 0x7000, 2)));
            Assert.That(memory.Bytes(0x20000, 6), Is.EqualTo("hello\0"u8.ToArray()));
            Assert.That(memory.Bytes(0x500, 32), Is.EqualTo(BootBytes.Le([.. LongModeBoot.Gdt().Cast<object>()])), "the 64-bit GDT, not PVH's");
        });
    }

    [Test]
    public void AutoBootsAPvhImageInProtectedMode()
    {
        var memory = new FakeGuestMemory(Ram);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.Auto, "");

        Assert.That((state.Rip, state.Rbx, state.Cr0), Is.EqualTo((0x100000UL, 0x6000UL, 1UL)));
    }

    [Test]
    public void UndefinedProtocolIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(Elf64WithPvh(), memory);

        Assert.Throws<ArgumentOutOfRangeException>(() => GuestBoot.Setup(memory, image, (BootProtocol)42, ""));
    }

    [Test]
    public void TheCliReportsBootErrorsAsBadInputOnOneLine()
    {
        var error = Assert.Throws<BootImageException>(() => ElfImage.Parse([1, 2, 3]))!;

        Assert.Multiple(() =>
        {
            Assert.That(CliErrorHandler.IsInputOrEnvironment(error), Is.True);
            Assert.That(error.Message, Does.Not.Contain("\n").And.Not.Contain("Parameter"));
        });
    }
}
