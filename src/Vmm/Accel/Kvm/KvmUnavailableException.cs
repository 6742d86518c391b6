namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The kvm accelerator cannot be used or a KVM call failed: /dev/kvm is missing or inaccessible, the API version or a
/// needed capability is wrong, or an ioctl/mmap returned an error. The message names the call and the errno.
/// </summary>
public sealed class KvmUnavailableException : Exception
{
    /// <summary>Creates the exception with a message and no errno.</summary>
    public KvmUnavailableException()
        : this("KVM is unavailable")
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    /// <param name="message">One line naming what failed and why.</param>
    public KvmUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/> and the exception that caused it.</summary>
    /// <param name="message">One line naming what failed and why.</param>
    /// <param name="innerException">The cause.</param>
    public KvmUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a failed call.</summary>
    /// <param name="operation">The call that failed, e.g. <c>KVM_CREATE_VM</c>.</param>
    /// <param name="errno">The errno it set.</param>
    /// <param name="hint">What the failure usually means, or null.</param>
    public KvmUnavailableException(string operation, int errno, string? hint)
        : base(FormatMessage(operation, errno, hint))
    {
        Operation = operation;
        Errno = errno;
    }

    /// <summary>The call that failed, or null when the failure is not one call's.</summary>
    public string? Operation { get; }

    /// <summary>The errno of the failed call; 0 when none applies.</summary>
    public int Errno { get; }

    private static string FormatMessage(string operation, int errno, string? hint)
    {
        var text = $"{operation} failed with errno {errno} ({KvmNative.ErrnoName(errno)})";
        return hint is null ? text : $"{text}: {hint}";
    }
}
