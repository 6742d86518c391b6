namespace Hypervisor.HostMm.Swap;

/// <summary>Builds the device and the swap area that <see cref="SwapOptions"/> describe.</summary>
public static class SwapFactory
{
    /// <summary>
    /// Creates the device: a <see cref="FileSwapDevice"/> or a <see cref="ZramSwapDevice"/>, wrapped in a
    /// <see cref="FaultInjectingSwapDevice"/> when <see cref="SwapOptions.FaultInjection"/> is set.
    /// </summary>
    /// <exception cref="SwapConfigurationException">An option breaks a rule, the file cannot be created, or the disk is too small.</exception>
    public static ISwapDevice CreateDevice(SwapOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ISwapDevice device = options.Kind == SwapDeviceKind.Zram
            ? new ZramSwapDevice(options.SizeBytes, options.ZramIncompressibleThreshold)
            : new FileSwapDevice(options.Path, options.SizeBytes, options.DirectIo);
        return options.FaultInjection is { } injection ? new FaultInjectingSwapDevice(device, injection) : device;
    }

    /// <summary>Creates the device and an area that owns it (disposing the area disposes the device).</summary>
    /// <exception cref="SwapConfigurationException">As <see cref="CreateDevice"/>.</exception>
    public static SwapArea CreateArea(SwapOptions options) => new(CreateDevice(options), ownsDevice: true);

    /// <summary>The readahead state for <paramref name="options"/>' <see cref="SwapOptions.PageCluster"/>.</summary>
    public static SwapReadahead CreateReadahead(SwapOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new SwapReadahead(options.PageCluster);
    }
}
