namespace Hypervisor.Bench.Vmm;

/// <summary>The sample guests' images (<c>guests/build/NAME.elf</c>, built by <c>make -C guests</c>) from a benchmark's run directory.</summary>
internal static class SampleGuest
{
    /// <summary>The full path of <c>guests/build/<paramref name="name"/>.elf</c> in the repository above the running benchmark.</summary>
    /// <exception cref="InvalidOperationException">No Hypervisor.sln above the run directory, or the image was not built.</exception>
    public static string ImagePath(string name)
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Hypervisor.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        var path = Path.Combine(root ?? throw new InvalidOperationException("Hypervisor.sln not found above " + AppContext.BaseDirectory), "guests", "build", name + ".elf");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is missing: build the guests with 'make -C guests'");
    }
}
