namespace Hypervisor.Vmm.Devices;

/// <summary>A fw_cfg file was added with a bad name (empty, too long, not ASCII, a duplicate) or too many files were added.</summary>
/// <remarks>Not an <see cref="Hypervisor.Notifier.IInputError"/> today: every fw_cfg file is added by <c>hv</c>'s own code
/// with a fixed name, so reaching this is a bug. An option that lets a user add files (QEMU's <c>-fw_cfg</c>) would make
/// the name input and this exception an input error.</remarks>
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
