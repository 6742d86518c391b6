using System.Diagnostics;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>Images from the machine's real assembler and linker (gcc + GNU ld), not from <see cref="ElfBuilder"/>.</summary>
public sealed class GnuToolchainImageTests
{
    private const string Source = """
        .section .multiboot, "a"
        .align 4
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

        .pushsection .note.Xen, "a", @note
        .align 4
        .long 4
        .long 4
        .long 18
        .asciz "Xen"
        .long pvh_start
        .popsection

        .text
        .code32
        .globl _start
        _start:
        pvh_start:
            movl $0x2a, %eax
            outb %al, $0xf4
            hlt

        .bss
        .space 0x3000
        """;

    private const string LinkerScript = """
        ENTRY(_start)
        SECTIONS
        {
          . = 0x100000;
          .text : { *(.multiboot) *(.text) }
          .note.Xen : { *(.note.Xen) }
          .bss : { *(.bss) }
        }
        """;

    [Test]
    public void Elf32WithMultibootHeaderAndPvhNoteFromGnuLd()
    {
        var bytes = BuildWithGnuToolchain();
        var image = ElfImage.Parse(bytes);
        var memory = new FakeGuestMemory(16 << 20);
        var loaded = ImageLoader.Load(image, memory);
        var pvh = PvhBoot.Setup(memory, loaded, "hello");

        Assert.Multiple(() =>
        {
            Assert.That(image.Is64Bit, Is.False);
            Assert.That(image.Entry, Is.EqualTo(0x100000 + 12), "_start follows the 12-byte multiboot header");
            Assert.That(image.PvhEntry, Is.EqualTo(image.Entry));
            Assert.That(image.Multiboot?.Flags, Is.EqualTo(3));
            Assert.That(image.MultibootEntry, Is.EqualTo((uint)image.Entry));
            Assert.That(loaded.LowestGpa, Is.EqualTo(0x100000));
            Assert.That(loaded.EndGpa, Is.GreaterThanOrEqualTo(0x103000UL), "bss is part of the image");
            Assert.That(memory.Bytes(image.Entry, 5), Is.EqualTo(new byte[] { 0xB8, 0x2A, 0, 0, 0 }), "mov $0x2a, %eax at the entry");
            Assert.That(pvh.Rip, Is.EqualTo(image.Entry));
        });
    }

    private static byte[] BuildWithGnuToolchain()
    {
        var dir = Directory.CreateTempSubdirectory("hv-boot-");
        try
        {
            var source = Path.Combine(dir.FullName, "image.S");
            var obj = Path.Combine(dir.FullName, "image.o");
            var elf = Path.Combine(dir.FullName, "image.elf");
            var script = Path.Combine(dir.FullName, "image.ld");
            File.WriteAllText(source, Source + "\n");
            File.WriteAllText(script, LinkerScript + "\n");
            Run("gcc", ["-m32", "-c", "-o", obj, source]);
            Run("ld", ["-m", "elf_i386", "-static", "-nostdlib", "--build-id=none", "-z", "noexecstack", "-T", script, "-o", elf, obj]);
            return File.ReadAllBytes(elf);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void Run(string tool, string[] arguments)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Ignore($"{tool} is not installed here ({e.Message}); the GNU toolchain image test needs it");
            throw;
        }

        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                Assert.Ignore($"{tool} {string.Join(' ', arguments)} failed with {process.ExitCode} (no 32-bit support?): {stderr.Result}");
            }
        }
    }
}
