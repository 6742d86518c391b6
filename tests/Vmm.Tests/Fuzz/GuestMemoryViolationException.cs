namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The loader wrote outside guest RAM or over the loaded image: a loader bug, never the file's fault.</summary>
internal sealed class GuestMemoryViolationException(string message) : Exception(message);
