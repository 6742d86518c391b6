using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// A 32-bit guest turns on 32-bit paging (4 MiB and 4 KiB pages) or PAE paging with MOV to CR4/CR3/CR0, reaches a
/// data page through an alias mapping and through the identity mapping, and finds the A/D bits hardware sets; a
/// PAE CR3 whose PDPTE has a reserved bit is #GP on the MOV; 5-level paging still stops the VM, naming the mode.
/// </summary>
public sealed class LegacyPagingModeTests
{
    private const uint P = 1, W = 2, A = 0x20, D = 0x40, PS = 0x80;
    private const ulong Cr0Pg = 1UL << 31;
    private const uint Directory = 0x9000, Table = 0xA000, SecondTable = 0xB000;
    private const uint Alias = 0x0040_0000; // linear 4 MiB: mapped to DataAddress through a 4 KiB PTE
    private const uint Data = (uint)CpuTestMachine.DataAddress;

    [Test]
    public void ThirtyTwoBitPagingWith4MibAnd4KibPagesReachesTheSameByteThroughBothMappings()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, cr4);
            a.or(eax, 0x10); // CR4.PSE
            a.mov(cr4, eax);
            EnablePaging(a);
            a.mov(__dword_ptr[Alias + 0x10], 0x1234_5678);
            a.mov(ebx, __dword_ptr[Data + 0x10]);
            a.hlt();
        });
        m.WriteUInt32(Directory, 0 | PS | P | W); // linear 0–4 MiB identity through one 4 MiB page
        m.WriteUInt32(Directory + 4, Table | P | W);
        m.WriteUInt32(Table, Data | P | W);

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EBX], Is.EqualTo(0x1234_5678UL), "written through the alias, read through the 4 MiB page");
            Assert.That(m.ReadUInt32(Table) & (A | D), Is.EqualTo(A | D), "A and D on the alias PTE");
            Assert.That(m.ReadUInt32(Directory + 4) & (A | D), Is.EqualTo(A), "A, not D, on the PDE above it");
            Assert.That(m.ReadUInt32(Directory) & A, Is.EqualTo(A), "A on the 4 MiB PDE the code ran through");
            Assert.That(m.Cpu.CaptureRegisters().Cr0 & Cr0Pg, Is.EqualTo(Cr0Pg));
        });
    }

    [Test]
    public void PaePagingWith2MibAnd4KibPagesReachesTheSameByteThroughBothMappings()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, cr4);
            a.or(eax, 0x20); // CR4.PAE
            a.mov(cr4, eax);
            EnablePaging(a);
            a.mov(__dword_ptr[Alias + 0x20], 0x0BAD_F00D);
            a.mov(ebx, __dword_ptr[Data + 0x20]);
            a.hlt();
        });
        m.WriteUInt64(Directory, Table | P); // PDPTE 0: linear 0–1 GiB
        m.WriteUInt64(Table, 0x00_0000 | PS | P | W); // two 2 MiB identity pages
        m.WriteUInt64(Table + 8, 0x20_0000 | PS | P | W);
        m.WriteUInt64(Table + 16, SecondTable | P | W); // linear 4 MiB: a page table
        m.WriteUInt64(SecondTable, Data | P | W);

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EBX], Is.EqualTo(0x0BAD_F00DUL));
            Assert.That(m.ReadUInt64(SecondTable) & (A | D), Is.EqualTo(A | D), "A and D on the alias PTE");
            Assert.That(m.ReadUInt64(Table + 16) & (A | D), Is.EqualTo(A), "A on the PDE above it");
            Assert.That(m.ReadUInt64(Directory), Is.EqualTo(Table | P), "a PDPTE is never written");
        });
    }

    [Test]
    public void MovToCr3WithAReservedBitInAPresentPdpteIsAGeneralProtectionFaultAndCr3KeepsItsValue()
    {
        Label handler = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            a.mov(eax, cr4);
            a.or(eax, 0x20);
            a.mov(cr4, eax);
            EnablePaging(a);
            a.mov(eax, SecondTable);
            a.mov(cr3, eax); // its PDPTE 1 has bit 1 set: reserved
            a.mov(edi, 1);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0xD);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(handler));
        m.WriteUInt64(Directory, Table | P);
        m.WriteUInt64(Table, 0x00_0000 | PS | P | W);
        m.WriteUInt64(Table + 8, 0x20_0000 | PS | P | W);
        m.WriteUInt64(SecondTable, Table | P);
        m.WriteUInt64(SecondTable + 8, Table | P | W);

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0xDUL), "#GP delivered");
            Assert.That(m[Register.EDI], Is.Zero, "the MOV did not complete");
            Assert.That(m.StackSlot(0), Is.Zero, "#GP(0)");
            Assert.That(m.Cpu.CaptureRegisters().Cr3, Is.EqualTo((ulong)Directory), "CR3 kept its value");
        });
    }

    [Test]
    public void EnablingFiveLevelPagingStopsTheVcpuWithAnInternalErrorNamingTheMode()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            a.mov(eax, cr4);
            a.or(eax, 0x20 | 0x1000); // CR4.PAE | CR4.LA57
            a.mov(cr4, eax);
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, 0x100); // EFER.LME
            a.wrmsr();
            EnablePaging(a);
            a.hlt();
        });

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InternalError), exit.Detail);
            Assert.That(exit.Detail, Does.StartWith("guest paging mode LongMode5Level "));
            Assert.That(exit.Detail, Does.Contain("is not supported by the walker"));
            Assert.That(m.Cpu.Stats.ExceptionsDelivered, Is.Zero, "the VM stops; the guest sees no fault");
        });
    }

    private static void EnablePaging(Assembler a)
    {
        a.mov(eax, Directory);
        a.mov(cr3, eax);
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)Cr0Pg));
        a.mov(cr0, eax);
    }
}
