namespace Hypervisor.Vmm.Devices;

/// <summary>A fw_cfg file was added with a bad name (empty, too long, not ASCII, a duplicate) or too many files were added.</summary>
public sealed class InvalidFwCfgFileException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="name">The file name given.</param>
    /// <param name="rule">The rule it broke.</param>
    public InvalidFwCfgFileException(string name, string rule)
        : base($"fw_cfg file '{name}' is invalid: {rule}", nameof(name))
    {
        FileName = name;
    }

    /// <summary>The file name given.</summary>
    public string FileName { get; }
}
