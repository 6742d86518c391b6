namespace Hypervisor.Notifier.UserEvents;

/// <summary>A cookie named no region registered on the channel. Bad input (<see cref="NotifierRule.UnknownCookie"/>).</summary>
public sealed class UnknownCookieException : KeyNotFoundException, IInputError
{
    /// <summary>Creates the exception for <paramref name="cookie"/>.</summary>
    /// <param name="cookie">The cookie that is not registered.</param>
    public UnknownCookieException(ulong cookie)
        : base($"cookie {cookie} (0x{cookie:x}) is not registered on this channel: only a cookie that RegisterRegion accepted, and that was not unregistered since, can be unregistered")
    {
        Cookie = cookie;
    }

    /// <summary>The cookie that is not registered.</summary>
    public ulong Cookie { get; }

    /// <summary>The rule that was broken: always <see cref="NotifierRule.UnknownCookie"/>.</summary>
    public NotifierRule Rule => NotifierRule.UnknownCookie;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
