namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>Builds expected little-endian byte strings for the boot-structure tests.</summary>
internal static class BootBytes
{
    public static byte[] Le(params object[] fields) => [.. fields.SelectMany(f => f switch
    {
        ulong v => BitConverter.GetBytes(v),
        uint v => BitConverter.GetBytes(v),
        ushort v => BitConverter.GetBytes(v),
        byte[] v => v,
        _ => throw new ArgumentException($"unsupported field {f.GetType()}", nameof(fields)),
    })];
}
