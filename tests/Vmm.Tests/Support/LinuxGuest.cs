namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// The Linux guest built by <c>make -C guests linux</c> (Debian's cloud kernel and a busybox initramfs in
/// <c>guests/build/linux</c>). Tests that need it are ignored, with the reason, where it has not been built: building it
/// fetches Debian's packages, which <c>.ci/run</c> does and a test never does behind the user's back.
/// </summary>
public static class LinuxGuest
{
    /// <summary>The guest command line the tests boot with: the serial console, nothing else the kernel needs.</summary>
    public const string CommandLine = "console=ttyS0";

    /// <summary>Guest RAM in MiB.</summary>
    public const int MemoryMiB = 512;

    /// <summary>The paths of the kernel and the initramfs; ignores the calling test when they are missing.</summary>
    public static (string Kernel, string Initrd) Require()
    {
        var directory = Path.Combine(GuestImages.RepositoryRoot(), "guests", "build", "linux");
        var kernel = Path.Combine(directory, "vmlinux");
        var initrd = Path.Combine(directory, "initrd");
        if (!File.Exists(kernel) || !File.Exists(initrd))
        {
            Assert.Ignore($"the Linux guest is not built ({kernel} or {initrd} missing): run 'make -C guests linux', which fetches Debian's linux-image-cloud-amd64 and busybox-static");
        }

        return (kernel, initrd);
    }

    /// <summary>The paths of the kernel as Debian ships it (a bzImage) and the initramfs; ignores the calling test when they are missing.</summary>
    public static (string BzImage, string Initrd) RequireBzImage()
    {
        var directory = Path.Combine(GuestImages.RepositoryRoot(), "guests", "build", "linux");
        var kernel = Path.Combine(directory, "vmlinuz");
        var initrd = Path.Combine(directory, "initrd");
        if (!File.Exists(kernel) || !File.Exists(initrd))
        {
            Assert.Ignore($"the Linux guest's bzImage is not built ({kernel} or {initrd} missing): run 'make -C guests linux', which fetches Debian's linux-image-cloud-amd64 and busybox-static");
        }

        return (kernel, initrd);
    }

    /// <summary>The lines the guest's userland printed (/init's and memtest's), in order, without the kernel's.</summary>
    /// <param name="console">A console transcript.</param>
    public static IReadOnlyList<string> UserlandLines(string console) =>
        console.Split('\n')
            .Select(line => line.TrimEnd('\r'))
            .Where(line => line.StartsWith("init: ", StringComparison.Ordinal) || line.StartsWith("memtest: ", StringComparison.Ordinal))
            .Select(line => line.StartsWith("memtest: ", StringComparison.Ordinal) && line.Contains(" of anonymous memory at ", StringComparison.Ordinal)
                ? line[..line.IndexOf(" at ", StringComparison.Ordinal)]
                : line)
            .ToList();

    /// <summary>The kernel's banner ("Linux version …"), without its timestamp, or null.</summary>
    /// <param name="console">A console transcript.</param>
    public static string? Banner(string console)
    {
        var line = console.Split('\n').FirstOrDefault(l => l.Contains("Linux version ", StringComparison.Ordinal));
        return line?[line.IndexOf("Linux version ", StringComparison.Ordinal)..].TrimEnd('\r');
    }
}
