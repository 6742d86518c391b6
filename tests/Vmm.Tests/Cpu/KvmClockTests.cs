using System.Buffers.Binary;
using System.Text;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// KVM's paravirtual CPUID leaves and kvmclock as a Linux guest uses them: <c>hypervisor_cpuid_base</c>'s scan finds
/// "KVMKVMKVM" with KVM_FEATURE_CLOCKSOURCE2 and the stable bit; MSR_KVM_SYSTEM_TIME_NEW gets a
/// <c>pvclock_vcpu_time_info</c> (Documentation/virt/kvm/x86/msr.rst layout) whose scale, read with pvclock's formulas,
/// maps the TSC to virtual time and gives 1 000 000 kHz; MSR_KVM_WALL_CLOCK_NEW gets the boot wall-clock time.
/// </summary>
public sealed class KvmClockTests
{
    private const uint WallClockMsr = 0x4B56_4D00;
    private const uint SystemTimeMsr = 0x4B56_4D01;
    private const uint TscMsr = 0x10;
    private const ulong Gpa = CpuTestMachine.DataAddress + 0x40;

    private static void Wrmsr(Assembler a, uint msr, ulong value)
    {
        a.mov(ecx, msr);
        a.mov(eax, (uint)value);
        a.mov(edx, (uint)(value >> 32));
        a.wrmsr();
    }

    /// <summary>pvclock_vcpu_time_info as the guest reads it.</summary>
    private readonly record struct TimeInfo(uint Version, uint Pad0, ulong TscTimestamp, ulong SystemTime, uint Mul, sbyte Shift, byte Flags, ushort Pad)
    {
        public static TimeInfo Read(CpuTestMachine m, ulong gpa)
        {
            var b = new byte[32];
            m.Ram.Read(gpa, b);
            return new TimeInfo(
                BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4)),
                BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8)), BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16)),
                BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(24)), (sbyte)b[28], b[29], BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(30)));
        }

        /// <summary>pvclock_scale_delta then __pvclock_read_cycles: system_time + ((delta shifted) × mul) >> 32.</summary>
        public ulong NanosecondsAt(ulong tsc)
        {
            var delta = tsc - TscTimestamp;
            delta = Shift < 0 ? delta >> -Shift : delta << Shift;
            return SystemTime + (ulong)(((UInt128)delta * Mul) >> 32);
        }

        /// <summary>pvclock_tsc_khz: (10⁶ &lt;&lt; 32) / mul, then undo the shift.</summary>
        public ulong TscKhz()
        {
            var khz = (1_000_000UL << 32) / Mul;
            return Shift < 0 ? khz << -Shift : khz >> Shift;
        }
    }

    [Test]
    public void HypervisorCpuidBaseScanFindsKvmWithOnlyKvmclockFeatures()
    {
        uint? kvmBase = null;
        for (var leaf = 0x4000_0000u; leaf < 0x4001_0000u; leaf += 0x100)
        {
            var (eax, ebx, ecx, edx) = CpuidModel.Query(leaf, 0, 0);
            var signature = new byte[12];
            BinaryPrimitives.WriteUInt32LittleEndian(signature, ebx);
            BinaryPrimitives.WriteUInt32LittleEndian(signature.AsSpan(4), ecx);
            BinaryPrimitives.WriteUInt32LittleEndian(signature.AsSpan(8), edx);
            if (signature.SequenceEqual("KVMKVMKVM\0\0\0"u8.ToArray()) && eax >= leaf)
            {
                kvmBase = leaf;
                break;
            }
        }

        Assert.That(kvmBase, Is.EqualTo(0x4000_0100u));
        var features = CpuidModel.Query(kvmBase!.Value + 1, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That(CpuidModel.Query(kvmBase.Value, 0, 0).Eax, Is.EqualTo(0x4000_0101u), "max leaf includes KVM_CPUID_FEATURES");
            Assert.That(features.Eax, Is.EqualTo((1u << 3) | (1u << 24)), "CLOCKSOURCE2 and CLOCKSOURCE_STABLE_BIT only");
            Assert.That(features.Edx, Is.Zero, "no hints");
            var own = CpuidModel.Query(0x4000_0000, 0, 0);
            var ownSignature = new byte[12];
            BinaryPrimitives.WriteUInt32LittleEndian(ownSignature, own.Ebx);
            BinaryPrimitives.WriteUInt32LittleEndian(ownSignature.AsSpan(4), own.Ecx);
            BinaryPrimitives.WriteUInt32LittleEndian(ownSignature.AsSpan(8), own.Edx);
            Assert.That(Encoding.ASCII.GetString(ownSignature), Is.EqualTo(CpuidModel.HypervisorSignature), "the project's own leaves stay at 0x40000000");
        });
    }

    [Test]
    public void GuestCpuidSeesTheKvmLeaves()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.mov(eax, 0x4000_0100);
            a.cpuid();
            a.mov(r8d, eax);
            a.mov(r9d, ebx);
            a.mov(eax, 0x4000_0101);
            a.cpuid();
            a.hlt();
        });

        Assert.That((m[Register.R8], m[Register.R9], m[Register.RAX]), Is.EqualTo((0x4000_0101UL, 0x4B4D564BUL, (ulong)((1u << 3) | (1u << 24)))));
    }

    [Test]
    public void SystemTimeMsrWritesTheTimeInfoWithAUnitScale()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            Wrmsr(a, SystemTimeMsr, Gpa | 1);
            a.mov(ecx, 100);
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.dec(ecx);
            a.jnz(loop);
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r8, rax);
            a.mov(ecx, SystemTimeMsr);
            a.rdmsr();
            a.hlt();
        });
        var info = TimeInfo.Read(m, Gpa);

        Assert.Multiple(() =>
        {
            Assert.That(info.Version % 2, Is.Zero, "version even: the update is complete");
            Assert.That(info.Version, Is.Not.Zero, "the structure was written");
            Assert.That((info.Pad0, info.Pad), Is.EqualTo((0u, (ushort)0)));
            Assert.That(info.Flags & 1, Is.EqualTo(1), "PVCLOCK_TSC_STABLE_BIT");
            Assert.That(info.TscKhz(), Is.EqualTo(1_000_000UL), "pvclock_tsc_khz");
            Assert.That(info.TscKhz(), Is.EqualTo((ulong)CpuidModel.TscKhz), "the same TSC frequency as leaf 0x40000010");
            Assert.That(info.TscTimestamp, Is.LessThan(m[Register.R8]), "stamped before the later RDTSC");
            Assert.That(info.NanosecondsAt(m[Register.R8]), Is.EqualTo(m[Register.R8] - (ulong)(m.Cpu.Tsc - m.Cpu.VirtualNanoseconds)), "the TSC maps to the vCPU's virtual time");
            Assert.That(m.Cpu.Tsc, Is.EqualTo(m.Cpu.VirtualNanoseconds), "no IA32_TSC write: virtual time is the TSC");
            Assert.That(info.NanosecondsAt(m[Register.R8]) - info.SystemTime, Is.EqualTo(m[Register.R8] - info.TscTimestamp), "1 ns per TSC tick");
            Assert.That((m[Register.RDX] << 32) | (uint)m[Register.RAX], Is.EqualTo(Gpa | 1), "RDMSR returns the value written");
        });
    }

    [Test]
    public void GuestTscWriteRewritesTheTimeInfoAndVirtualTimeContinues()
    {
        const ulong tsc = 1_000_000_000_000;
        using var m = CpuTestMachine.Execute(64, a =>
        {
            Wrmsr(a, SystemTimeMsr, Gpa | 1);
            a.mov(r10, __qword_ptr[Gpa + 16]);
            Wrmsr(a, TscMsr, tsc);
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r8, rax);
            a.hlt();
        });
        var info = TimeInfo.Read(m, Gpa);
        var timeBefore = m[Register.R10];

        Assert.Multiple(() =>
        {
            Assert.That(info.Version % 2, Is.Zero);
            Assert.That(info.Version, Is.GreaterThanOrEqualTo(4u), "written twice: on enable and on the TSC write");
            Assert.That(info.TscTimestamp, Is.EqualTo(tsc), "stamped at the TSC the guest wrote");
            Assert.That(m[Register.R8], Is.GreaterThanOrEqualTo(tsc).And.LessThan(tsc + 100));
            var now = info.NanosecondsAt(m[Register.R8]);
            Assert.That(now, Is.GreaterThanOrEqualTo(timeBefore).And.LessThan(timeBefore + 100), "kvmclock time did not jump with the TSC");
            Assert.That(now, Is.EqualTo(m[Register.R8] - (ulong)(m.Cpu.Tsc - m.Cpu.VirtualNanoseconds)), "the TSC maps to the vCPU's virtual time");
        });
    }

    [Test]
    public void ClearingTheEnableBitStopsUpdates()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            Wrmsr(a, SystemTimeMsr, Gpa | 1);
            a.mov(r9d, __dword_ptr[Gpa]);
            Wrmsr(a, SystemTimeMsr, Gpa);
            a.mov(__dword_ptr[Gpa + 8], 0x5A5A);
            Wrmsr(a, TscMsr, 1_000_000);
            a.hlt();
        });
        var info = TimeInfo.Read(m, Gpa);

        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.KvmClockEnabled, Is.False);
            Assert.That(info.Version, Is.EqualTo((uint)m[Register.R9]), "no update after disabling");
            Assert.That(info.TscTimestamp, Is.EqualTo(0x5A5AUL), "the guest's own store survives a TSC write");
        });
    }

    [Test]
    public void WallClockMsrWritesTheBootTime()
    {
        var boot = new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.Zero).AddTicks(1_234_567);
        using var m = CpuTestMachine.Execute(64, a =>
        {
            Wrmsr(a, WallClockMsr, Gpa);
            a.hlt();
        }, machine => machine.Cpu.BootWallClock = boot);
        var bytes = new byte[12];
        m.Ram.Read(Gpa, bytes);

        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes) % 2, Is.Zero, "version even");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes), Is.Not.Zero);
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)), Is.EqualTo((uint)boot.ToUnixTimeSeconds()), "sec");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)), Is.EqualTo(123_456_700u), "nsec");
        });
    }

    [Test]
    public void AddressOutsideRamIsIgnoredWithoutAFault()
    {
        const ulong outside = 0xF000_0000;
        using var m = CpuTestMachine.Execute(64, a =>
        {
            Wrmsr(a, SystemTimeMsr, outside | 1);
            Wrmsr(a, WallClockMsr, outside);
            a.mov(ecx, WallClockMsr);
            a.rdmsr();
            a.hlt();
        });

        Assert.That((uint)m[Register.RAX], Is.EqualTo((uint)outside));
    }
}
