using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>Whether this process can run guests on /dev/kvm.</summary>
public static class KvmAvailability
{
    /// <summary>The KVM device node.</summary>
    public const string DevicePath = "/dev/kvm";

    /// <summary>
    /// Opens /dev/kvm and checks the API version (12) and the capabilities the accelerator needs: user memory regions,
    /// KVM_SET_TSS_ADDR, KVM_SET_CPUID2 and kvm_run.immediate_exit. Linux on x86-64 only.
    /// </summary>
    /// <param name="reason">Why KVM cannot be used, one line; empty when it can.</param>
    /// <returns>True when <see cref="KvmMachine"/> can be created.</returns>
    public static bool IsAvailable(out string reason)
    {
        try
        {
            var fd = OpenChecked();
            KvmNative.Close(fd);
            reason = string.Empty;
            return true;
        }
        catch (KvmUnavailableException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Opens /dev/kvm and checks what <see cref="IsAvailable"/> checks.</summary>
    /// <returns>The open system fd; the caller closes it.</returns>
    /// <exception cref="KvmUnavailableException">A check failed.</exception>
    internal static int OpenChecked()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new KvmUnavailableException(
                $"the kvm accelerator needs Linux on x86-64; this is {RuntimeInformation.OSDescription} on {RuntimeInformation.ProcessArchitecture}");
        }

        var fd = KvmNative.Open(DevicePath, KvmNative.ORdwr | KvmNative.OCloexec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var hint = errno switch
            {
                2 => $"{DevicePath} does not exist (no KVM module, or no hardware virtualisation exposed to this machine)",
                13 => $"no permission to open {DevicePath} (run as root or join the kvm group)",
                _ => null,
            };
            throw new KvmUnavailableException($"open({DevicePath})", errno, hint);
        }

        try
        {
            var version = KvmNative.Ioctl(fd, KvmIoctl.GetApiVersion, 0);
            if (version < 0)
            {
                throw new KvmUnavailableException("KVM_GET_API_VERSION", Marshal.GetLastPInvokeError(), null);
            }

            if (version != KvmIoctl.ApiVersion)
            {
                throw new KvmUnavailableException(
                    $"KVM_GET_API_VERSION returned {version}: the kvm accelerator speaks KVM API version {KvmIoctl.ApiVersion} only");
            }

            RequireCapability(fd, KvmIoctl.CapUserMemory, "KVM_CAP_USER_MEMORY");
            RequireCapability(fd, KvmIoctl.CapSetTssAddr, "KVM_CAP_SET_TSS_ADDR");
            RequireCapability(fd, KvmIoctl.CapExtCpuid, "KVM_CAP_EXT_CPUID");
            RequireCapability(fd, KvmIoctl.CapImmediateExit, "KVM_CAP_IMMEDIATE_EXIT");
            return fd;
        }
        catch
        {
            KvmNative.Close(fd);
            throw;
        }
    }

    private static void RequireCapability(int fd, int capability, string name)
    {
        var result = KvmNative.Ioctl(fd, KvmIoctl.CheckExtension, capability);
        if (result < 0)
        {
            throw new KvmUnavailableException($"KVM_CHECK_EXTENSION({name})", Marshal.GetLastPInvokeError(), null);
        }

        if (result == 0)
        {
            throw new KvmUnavailableException($"KVM lacks {name} ({capability}), which the kvm accelerator needs");
        }
    }
}
