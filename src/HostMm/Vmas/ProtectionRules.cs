namespace Hypervisor.HostMm.Vmas;

/// <summary>Which <see cref="Protection"/> values are valid, and their <c>rwx</c> form.</summary>
public static class ProtectionRules
{
    /// <summary>Every defined bit.</summary>
    private const Protection Defined = Protection.Read | Protection.Write | Protection.Execute;

    /// <summary>
    /// Throws <see cref="InvalidProtectionException"/> when <paramref name="protection"/> has bits other than
    /// Read, Write and Execute, or grants Write or Execute without Read (an x86 PTE that is present is
    /// always readable, so write-only and execute-only pages cannot be expressed). <see cref="Protection.None"/>
    /// is valid.
    /// </summary>
    /// <param name="protection">The value to check.</param>
    /// <param name="paramName">The argument being checked, for the message.</param>
    public static void Validate(Protection protection, string paramName)
    {
        var undefined = protection & ~Defined;
        if (undefined != 0)
        {
            throw new InvalidProtectionException(
                HostMmRule.UndefinedProtectionBits,
                protection,
                $"protection 0x{(int)protection:x} has undefined bits 0x{(int)undefined:x}: only Read (1), Write (2) and Execute (4) are defined",
                paramName);
        }

        if (protection != Protection.None && (protection & Protection.Read) == 0)
        {
            throw new InvalidProtectionException(
                HostMmRule.WriteOrExecuteWithoutRead,
                protection,
                $"protection {ToRwx(protection)} ({protection}) grants Write or Execute without Read: x86 page tables cannot express write-only or execute-only pages, so Write and Execute need Read",
                paramName);
        }
    }

    /// <summary>True when <see cref="Validate"/> would accept <paramref name="protection"/>.</summary>
    /// <param name="protection">The value to check.</param>
    public static bool IsValid(Protection protection) =>
        (protection & ~Defined) == 0 && (protection == Protection.None || (protection & Protection.Read) != 0);

    /// <summary>The <c>/proc/pid/maps</c> form: three characters, <c>r</c>, <c>w</c>, <c>x</c> or <c>-</c>.</summary>
    /// <param name="protection">The value to format; undefined bits are ignored.</param>
    public static string ToRwx(Protection protection) => string.Create(3, protection, static (span, p) =>
    {
        span[0] = (p & Protection.Read) != 0 ? 'r' : '-';
        span[1] = (p & Protection.Write) != 0 ? 'w' : '-';
        span[2] = (p & Protection.Execute) != 0 ? 'x' : '-';
    });
}
