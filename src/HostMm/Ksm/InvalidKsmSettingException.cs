namespace Hypervisor.HostMm.Ksm;

/// <summary>
/// A KSM knob was given a value its rule refuses; the message names the knob, the value and the rule. Bad input
/// (<see cref="HostMmRule.InvalidKsmSetting"/>).
/// </summary>
public sealed class InvalidKsmSettingException : ArgumentOutOfRangeException, IInputError
{
    /// <summary>Creates the exception for <paramref name="knob"/> set to <paramref name="value"/>, which breaks <paramref name="requirement"/>.</summary>
    public InvalidKsmSettingException(string knob, object value, string requirement)
        : base(knob, value, $"KSM {knob} = {value}: {requirement}")
    {
        Knob = knob;
        Requirement = requirement;
    }

    /// <summary>The knob's Linux name (e.g. <c>max_page_sharing</c>).</summary>
    public string Knob { get; }

    /// <summary>The rule the value breaks, in words.</summary>
    public string Requirement { get; }

    /// <summary>The rule that was broken: always <see cref="HostMmRule.InvalidKsmSetting"/>.</summary>
    public HostMmRule Rule => HostMmRule.InvalidKsmSetting;

    Enum IInputError.Rule => Rule;
}
