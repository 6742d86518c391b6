using System.Text;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The detail line of a run that stopped because the vCPU cannot continue (KVM_EXIT_FAIL_ENTRY,
/// KVM_EXIT_INTERNAL_ERROR), from the fields of the exit's member of kvm_run's exit union.
/// </summary>
/// <remarks>Pure functions of those fields: the text depends on nothing else, so it is the same for a real exit and for
/// synthetic values.</remarks>
internal static class KvmExitDetail
{
    /// <summary>The detail of KVM_EXIT_FAIL_ENTRY: the hardware's reason in hex and the host CPU.</summary>
    /// <param name="hardwareEntryFailureReason">fail_entry.hardware_entry_failure_reason: on VMX the VM-exit reason with
    /// bit 31 set, on SVM the exit code (0xffffffffffffffff for VMEXIT_INVALID).</param>
    /// <param name="cpu">fail_entry.cpu: the host CPU the entry failed on.</param>
    public static string FailEntry(ulong hardwareEntryFailureReason, uint cpu) =>
        $"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x{hardwareEntryFailureReason:x} on cpu {cpu}";

    /// <summary>
    /// The detail of KVM_EXIT_INTERNAL_ERROR: the suberror with its name, then the data words in hex, at most
    /// <see cref="KvmRunInternal.MaxData"/> of them.
    /// </summary>
    /// <param name="suberror">internal.suberror (KVM_INTERNAL_ERROR_*: 1 emulation, 2 simultaneous exceptions,
    /// 3 event delivery, 4 unexpected exit reason).</param>
    /// <param name="ndata">internal.ndata as the kernel wrote it.</param>
    /// <param name="data">internal.data; words beyond <paramref name="ndata"/>, its length or <see cref="KvmRunInternal.MaxData"/> are not shown.</param>
    public static string InternalError(uint suberror, uint ndata, ReadOnlySpan<ulong> data)
    {
        var name = suberror switch
        {
            1 => "instruction emulation failed",
            2 => "simultaneous exceptions",
            3 => "unexpected exit while delivering an event",
            4 => "unexpected exit reason",
            _ => "unknown suberror",
        };
        var text = new StringBuilder($"KVM_EXIT_INTERNAL_ERROR: suberror {suberror} ({name})");
        var count = (int)Math.Min(Math.Min(ndata, (uint)KvmRunInternal.MaxData), (uint)data.Length);
        if (count > 0)
        {
            text.Append(", data");
            for (var i = 0; i < count; i++)
            {
                text.Append($" 0x{data[i]:x}");
            }
        }

        return text.ToString();
    }
}
