namespace Hypervisor.Notifier.UserEvents;

/// <summary>A region was registered with a cookie that the channel already holds. Bad input (<see cref="NotifierRule.DuplicateCookie"/>).</summary>
public sealed class DuplicateCookieException : ArgumentException, IInputError
{
    /// <summary>Creates the exception for <paramref name="cookie"/>.</summary>
    /// <param name="cookie">The cookie registered twice.</param>
    public DuplicateCookieException(ulong cookie)
        : base($"cookie {cookie} (0x{cookie:x}) is already registered on this channel: each region needs a cookie unique within its channel", nameof(cookie))
    {
        Cookie = cookie;
    }

    /// <summary>The cookie registered twice.</summary>
    public ulong Cookie { get; }

    /// <summary>The rule that was broken: always <see cref="NotifierRule.DuplicateCookie"/>.</summary>
    public NotifierRule Rule => NotifierRule.DuplicateCookie;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
