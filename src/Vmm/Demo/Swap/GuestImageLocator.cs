namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// Finds a sample guest image (<c>guests/build/NAME.elf</c>) for the demos: in a folder given by the user, else in the
/// repository that holds the current directory or <c>hv</c> itself (the .NET build compiles the guests there).
/// </summary>
internal static class GuestImageLocator
{
    /// <summary>Returns the path of <c>NAME.elf</c>.</summary>
    /// <param name="name">The guest's name, e.g. <c>memtest</c>.</param>
    /// <param name="folder">A folder that holds the images, or null to search the repository.</param>
    /// <exception cref="FileNotFoundException">The image is in none of the places searched (the message lists them).</exception>
    public static string Find(string name, string? folder)
    {
        var file = name + ".elf";
        var searched = new List<string>();
        foreach (var candidate in Candidates(folder))
        {
            var path = Path.Combine(candidate, file);
            if (File.Exists(path))
            {
                return path;
            }

            searched.Add(candidate);
        }

        throw new FileNotFoundException(
            $"the sample guest '{file}' is not in {string.Join(", ", searched.Distinct())} (build the sample guests with 'make -C guests', or name their folder with --guests)",
            file);
    }

    /// <summary>Returns the paths of the Linux guest's kernel and initramfs (<c>linux/vmlinux</c>, <c>linux/initrd</c> under the images' folder).</summary>
    /// <param name="folder">A folder that holds the images, or null to search the repository.</param>
    /// <exception cref="FileNotFoundException">The Linux guest is in none of the places searched (the message says how to build it).</exception>
    public static (string Kernel, string Initrd) FindLinux(string? folder)
    {
        var searched = new List<string>();
        foreach (var candidate in Candidates(folder))
        {
            var kernel = Path.Combine(candidate, "linux", "vmlinux");
            var initrd = Path.Combine(candidate, "linux", "initrd");
            if (File.Exists(kernel) && File.Exists(initrd))
            {
                return (kernel, initrd);
            }

            searched.Add(Path.Combine(candidate, "linux"));
        }

        throw new FileNotFoundException(
            $"the Linux guest (vmlinux and initrd) is not in {string.Join(", ", searched.Distinct())} (build it with 'make -C guests linux', which fetches Debian's kernel and busybox)",
            "vmlinux");
    }

    private static IEnumerable<string> Candidates(string? folder)
    {
        if (folder is not null)
        {
            yield return Path.GetFullPath(folder);
            yield break;
        }

        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (Directory.Exists(Path.Combine(directory.FullName, "guests")))
                {
                    yield return Path.Combine(directory.FullName, "guests", "build");
                    break;
                }
            }
        }
    }
}
