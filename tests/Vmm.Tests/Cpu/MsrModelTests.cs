using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Tests.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The MSR model: PMU ranges read 0 and take only 0, MTRRs and PAT with their reserved-bit and memory-type rules,
/// FEATURE_CONTROL locked, TSC_AUX through RDTSCP/RDPID, canonical checks, and an MSR outside the model as #GP with one
/// log line naming it. Also the CPUID leaves the model adds (hypervisor leaves, no architectural PMU, the host vendor).
/// </summary>
public sealed class MsrModelTests
{
    /// <summary>Runs RDMSR (and WRMSR of <paramref name="value"/> first when given) in long mode; ESI = 0x10D after a #GP.</summary>
    private static CpuTestMachine Access(uint msr, ulong? value, RecordingLogger? logger = null)
    {
        Label handler = default;
        var m = CpuTestMachine.With(64, a =>
        {
            handler = a.CreateLabel();
            a.xor(esi, esi);
            a.mov(ecx, msr);
            if (value is { } v)
            {
                a.mov(eax, (uint)v);
                a.mov(edx, (uint)(v >> 32));
                a.wrmsr();
            }

            a.rdmsr();
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0x10D);
            a.hlt();
        });
        if (logger is not null)
        {
            m.Cpu.Log = logger;
        }

        m.SetGate(13, m.AddressOf(handler));
        m.RunToHalt();
        return m;
    }

    private static (bool Faulted, ulong Value) Read(uint msr, ulong? write = null)
    {
        using var m = Access(msr, write);
        return (m[Register.ESI] == 0x10D, (m[Register.RDX] << 32) | (uint)m[Register.RAX]);
    }

    [TestCase(0xC1u)]
    [TestCase(0x186u)]
    [TestCase(0x309u)]
    [TestCase(0x38Fu)]
    [TestCase(0xC001_0000u)]
    [TestCase(0xC001_0004u)]
    [TestCase(0xC001_0201u)]
    public void PerformanceCounterMsrsReadZeroAndAcceptOnlyZero(uint msr)
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(msr), Is.EqualTo((false, 0UL)));
            Assert.That(Read(msr, 0), Is.EqualTo((false, 0UL)));
            Assert.That(Read(msr, 0x41_0076).Faulted, Is.True, "a non-zero write is #GP (no virtual PMU)");
        });
    }

    [Test]
    public void ArchCapabilitiesIsAdvertisedReadOnlyAndDeclaresNoTransientExecutionVulnerability()
    {
        var (_, _, _, leaf7Edx) = CpuidModel.Query(7, 0, 0);
        var (faulted, value) = Read(X86Cpu.MsrArchCapabilities);
        Assert.Multiple(() =>
        {
            Assert.That(leaf7Edx & (1u << 29), Is.Not.Zero, "CPUID.(7,0):EDX[29] announces the MSR");
            Assert.That(faulted, Is.False);
            Assert.That(value & 1, Is.EqualTo(1UL), "RDCL_NO: no Meltdown, so the guest needs no page-table isolation");
            Assert.That(value & (1UL << 5), Is.Not.Zero, "MDS_NO: no VERW on every return to user mode");
            Assert.That(value & (1UL << 1), Is.Zero, "IBRS_ALL is not claimed: SPEC_CTRL is not modelled");
            Assert.That(Read(X86Cpu.MsrArchCapabilities, 0).Faulted, Is.True, "read-only");
        });
    }

    [Test]
    public void MtrrsFollowTheirRules()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(X86Cpu.MsrMtrrCap), Is.EqualTo((false, X86Cpu.MtrrCapabilities)));
            Assert.That(Read(X86Cpu.MsrMtrrCap, 0).Faulted, Is.True, "MTRRcap is read-only");
            Assert.That(Read(X86Cpu.MsrMtrrDefType, 0xC06), Is.EqualTo((false, 0xC06UL)));
            Assert.That(Read(X86Cpu.MsrMtrrDefType, 0x802).Faulted, Is.True, "memory type 2 is reserved");
            Assert.That(Read(X86Cpu.MsrMtrrDefType, 0x1006).Faulted, Is.True, "bit 12 is reserved");
            Assert.That(Read(0x200, 0x8000_0006), Is.EqualTo((false, 0x8000_0006UL)));
            Assert.That(Read(0x200, 0x8000_0106).Faulted, Is.True, "PHYSBASE bits 8-11 are reserved");
            Assert.That(Read(0x200, 0x1_0000_0000_0006).Faulted, Is.True, "above the 48-bit physical width");
            Assert.That(Read(0x20F, 0xFFFF_8000_0800), Is.EqualTo((false, 0xFFFF_8000_0800UL)));
            Assert.That(Read(0x20F, 0xFFFF_8000_0801).Faulted, Is.True, "PHYSMASK bits 0-10 are reserved");
            Assert.That(Read(0x250, 0x0606_0606_0606_0606), Is.EqualTo((false, 0x0606_0606_0606_0606UL)));
            Assert.That(Read(0x26F, 0x0006_0606_0606_0603).Faulted, Is.True, "type 3 in a fixed range");
            Assert.That(Read(0x251).Faulted, Is.True, "0x251 is not an MTRR");
        });
    }

    [Test]
    public void PatRefusesReservedMemoryTypes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(X86Cpu.MsrPat), Is.EqualTo((false, 0x0007_0406_0007_0406UL)), "the power-on PAT");
            Assert.That(Read(X86Cpu.MsrPat, 0x0007_0106_0007_0501), Is.EqualTo((false, 0x0007_0106_0007_0501UL)));
            Assert.That(Read(X86Cpu.MsrPat, 0x0007_0406_0007_0402).Faulted, Is.True, "type 2");
            Assert.That(Read(X86Cpu.MsrPat, 0x0800_0000_0000_0000).Faulted, Is.True, "type 8");
        });
    }

    [Test]
    public void FeatureControlIsLockedAndMiscEnableAndSysenterMsrsHoldTheirValues()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(X86Cpu.MsrFeatureControl), Is.EqualTo((false, X86Cpu.FeatureControlLocked)));
            Assert.That(Read(X86Cpu.MsrFeatureControl, 5).Faulted, Is.True);
            Assert.That(Read(X86Cpu.MsrMiscEnable), Is.EqualTo((false, 1UL)));
            Assert.That(Read(X86Cpu.MsrMiscEnable, 0x801), Is.EqualTo((false, 0x801UL)));
            Assert.That(Read(X86Cpu.MsrSysenterCs, 0x10), Is.EqualTo((false, 0x10UL)));
            Assert.That(Read(X86Cpu.MsrSysenterEip, 0xFFFF_8000_0000_1000), Is.EqualTo((false, 0xFFFF_8000_0000_1000UL)));
            Assert.That(Read(X86Cpu.MsrSysenterEsp, 0x0000_8000_0000_0000).Faulted, Is.True, "not canonical");
            Assert.That(Read(X86Cpu.MsrLstar, 0x1234_0000_0000_0000).Faulted, Is.True, "not canonical");
            Assert.That(Read(X86Cpu.MsrTscAux, 0x1_0000_0000).Faulted, Is.True, "TSC_AUX bits 63:32 are reserved");
            Assert.That(Read(X86Cpu.MsrApicBase).Value & 0xFFFF_F000, Is.EqualTo(0xFEE0_0000UL), "the APIC base is untouched");
        });
    }

    [Test]
    public void AnMsrOutsideTheModelIsGpWithOneLogLineNamingIt()
    {
        var logger = new RecordingLogger();
        using var read = Access(0x1234, null, logger);
        Assert.That(read[Register.ESI], Is.EqualTo(0x10D));
        read.Reset();
        read.RunFromStart(2, (Register.ECX, 0x1234));
        using var write = Access(0x4B564D02, 7, logger); // MSR_KVM_ASYNC_PF_EN: KVM's MSRs beyond kvmclock are outside the model
        Assert.Multiple(() =>
        {
            Assert.That(write[Register.ESI], Is.EqualTo(0x10D));
            var lines = logger.Messages.ToArray();
            Assert.That(lines.Count(l => l.Contains("RDMSR of MSR 0x1234", StringComparison.Ordinal)), Is.EqualTo(1), string.Join("\n", lines));
            Assert.That(lines.Count(l => l.Contains("WRMSR of MSR 0x4b564d02", StringComparison.Ordinal)), Is.EqualTo(1), string.Join("\n", lines));
        });
    }

    [Test]
    public void RdtscpAndRdpidReadTscAux([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            a.mov(ecx, X86Cpu.MsrTscAux);
            a.mov(eax, 0x1234_5678);
            a.xor(edx, edx);
            a.wrmsr();
            a.xor(ecx, ecx);
            a.rdtscp();
            a.mov(edi, ecx);
            if (bitness == 64) { a.rdpid(rbx); } else { a.rdpid(ebx); }
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EDI], Is.EqualTo(0x1234_5678));
            Assert.That(m[Register.EBX], Is.EqualTo(0x1234_5678));
        });
    }

    [Test]
    public void CpuidHasTheHypervisorLeavesTheHostVendorAndNoArchitecturalPmu()
    {
        var (max, b, c, d) = CpuidModel.Query(0x4000_0000, 0, 0);
        var signature = string.Concat(new[] { b, c, d }.Select(w => System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(w))));
        var (_, vb, vc, vd) = CpuidModel.Query(0, 0, 0);
        var vendor = string.Concat(new[] { vb, vd, vc }.Select(w => System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(w))));
        Assert.Multiple(() =>
        {
            Assert.That(max, Is.EqualTo(0x4000_0010));
            Assert.That(signature, Is.EqualTo(CpuidModel.HypervisorSignature));
            Assert.That(CpuidModel.Query(0x4000_0010, 0, 0), Is.EqualTo((CpuidModel.TscKhz, CpuidModel.ApicBusKhz, 0u, 0u)));
            Assert.That(CpuidModel.Query(0xA, 0, 0), Is.EqualTo((0u, 0u, 0u, 0u)), "no architectural PMU");
            Assert.That(vendor, Is.EqualTo(CpuidModel.Vendor));
            if (System.Runtime.Intrinsics.X86.X86Base.IsSupported)
            {
                var host = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
                Assert.That(vb, Is.EqualTo((uint)host.Ebx), "the host's vendor, as KVM shows it");
            }

            Assert.That(CpuidModel.Query(1, 0, 0).Edx & ((1u << 11) | (1u << 12)), Is.EqualTo((1u << 11) | (1u << 12)), "SEP, MTRR");
            Assert.That(CpuidModel.Query(0x8000_0001, 0, 0).Edx & (1u << 11), Is.EqualTo(1u << 11), "SYSCALL");
            Assert.That(CpuidModel.Query(7, 0, 0).Ecx & (1u << 22), Is.EqualTo(1u << 22), "RDPID");
        });
    }
}
