using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// Option factories whose parse errors name the option, the value given and the rule it broke, in one line.
/// </summary>
internal static class CliOptions
{
    /// <summary>An integer option accepting <c>[min, max]</c>.</summary>
    /// <param name="name">The option name, e.g. <c>--seed</c>.</param>
    /// <param name="description">Help text.</param>
    /// <param name="defaultValue">Value when the option is absent.</param>
    /// <param name="min">Smallest accepted value.</param>
    /// <param name="max">Largest accepted value.</param>
    public static Option<int> BoundedInt(string name, string description, int defaultValue, int min, int max) => new(name)
    {
        Description = description,
        HelpName = "N",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            var text = SingleToken(result);
            if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            {
                return value;
            }

            result.AddError(string.Create(
                CultureInfo.InvariantCulture,
                $"{name} expects a whole number from {min} to {max}, got '{text}'"));
            return defaultValue;
        },
    };

    /// <summary>
    /// A size option in the <see cref="ByteSize"/> syntax (a bare number is MiB) accepting multiples of
    /// <paramref name="multiple"/> from <paramref name="min"/> to <paramref name="max"/>; help shows sizes, not byte counts.
    /// </summary>
    /// <param name="name">The option name, e.g. <c>--size</c>.</param>
    /// <param name="alias">A second name (e.g. <c>-m</c>), or null.</param>
    /// <param name="description">Help text; the syntax and the range are appended.</param>
    /// <param name="defaultBytes">Value when the option is absent.</param>
    /// <param name="min">Smallest accepted size in bytes.</param>
    /// <param name="max">Largest accepted size in bytes.</param>
    /// <param name="multiple">Every accepted size is a multiple of this (4 KiB: whole pages).</param>
    public static Option<ByteSize> Size(string name, string? alias, string description, ulong defaultBytes, ulong min, ulong max, ulong multiple = 4096)
    {
        var option = alias is null ? new Option<ByteSize>(name) : new Option<ByteSize>(name, alias);
        option.Description = $"{description}: {ByteSize.Syntax} ({ByteSize.Format(min)} to {ByteSize.Format(max)}).";
        option.HelpName = "SIZE";
        option.DefaultValueFactory = _ => new ByteSize(defaultBytes);
        option.CustomParser = result =>
        {
            var text = SingleToken(result);
            if (ByteSize.TryParse(text, out var size) && size.Bytes >= min && size.Bytes <= max && size.Bytes % multiple == 0)
            {
                return size;
            }

            result.AddError($"{name} expects a size from {ByteSize.Format(min)} to {ByteSize.Format(max)} in whole {ByteSize.Format(multiple)} pages (a bare number is MiB), got '{text}'");
            return new ByteSize(defaultBytes);
        };
        return option;
    }

    /// <summary>An option taking one value of <typeparamref name="TEnum"/>, by name, case-insensitively.</summary>
    /// <param name="name">The option name, e.g. <c>--log-level</c>.</param>
    /// <param name="description">Help text.</param>
    /// <param name="defaultValue">Value when the option is absent.</param>
    public static Option<TEnum> Enum<TEnum>(string name, string description, TEnum defaultValue)
        where TEnum : struct, Enum
    {
        var names = System.Enum.GetNames<TEnum>();
        var option = new Option<TEnum>(name)
        {
            Description = description,
            HelpName = string.Join('|', names),
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result =>
            {
                var text = SingleToken(result);
                var match = names.FirstOrDefault(n => string.Equals(n, text, StringComparison.OrdinalIgnoreCase));
                if (match is not null)
                {
                    return System.Enum.Parse<TEnum>(match);
                }

                result.AddError($"{name} expects one of {string.Join(", ", names)}, got '{text}'");
                return defaultValue;
            },
        };
        option.CompletionSources.Add(names);
        return option;
    }

    private static string SingleToken(ArgumentResult result) =>
        result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
}
