using System.Runtime.InteropServices;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The kernel's <c>struct kvm_segment</c>: a segment register's hidden cache, 24 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal struct KvmSegment
{
    /// <summary>The kernel's size of the structure.</summary>
    public const int KernelSize = 24;

    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type;
    public byte Present;
    public byte Dpl;
    public byte Db;
    public byte S;
    public byte L;
    public byte G;
    public byte Avl;
    public byte Unusable;
    public byte Padding;

    /// <summary>The KVM form of <paramref name="cache"/>; a segment that is not present is marked unusable.</summary>
    /// <param name="cache">The boot code's segment cache.</param>
    public static KvmSegment From(in SegmentCache cache) => new()
    {
        Base = cache.Base,
        Limit = cache.Limit,
        Selector = cache.Selector,
        Type = cache.Type,
        Present = cache.Present ? (byte)1 : (byte)0,
        Dpl = cache.Dpl,
        Db = cache.DefaultBig ? (byte)1 : (byte)0,
        S = cache.CodeOrData ? (byte)1 : (byte)0,
        L = cache.LongMode ? (byte)1 : (byte)0,
        G = cache.Granularity ? (byte)1 : (byte)0,
        Unusable = cache.Present ? (byte)0 : (byte)1,
    };
}
