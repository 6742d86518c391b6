using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>Inline label creation for assembler snippets.</summary>
internal static class LabelExtensions
{
    /// <summary>Returns <paramref name="label"/> and also hands it out, so a jump and its target can be written in one expression.</summary>
    public static Label Also(this Label label, out Label copy)
    {
        copy = label;
        return label;
    }
}
