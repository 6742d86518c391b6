using System.Runtime.InteropServices;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// A page of executable host memory holding one function assembled with Iced for the host (x86-64 Linux),
/// called through an unmanaged function pointer: the host CPU as the oracle for the interpreter.
/// </summary>
public sealed unsafe class NativeCode : IDisposable // unsafe: the code is called through a raw function pointer.
{
    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int ProtExec = 4;
    private const int MapPrivate = 0x02;
    private const int MapAnonymous = 0x20;
    private const nuint PageBytes = 4096;

    private readonly nint _page;

    /// <summary>Assembles <paramref name="assembler"/> (64-bit) into a fresh page and makes the page executable.</summary>
    /// <exception cref="InvalidOperationException">The host refused the mapping or the code does not fit in a page.</exception>
    public NativeCode(Assembler assembler)
    {
        ArgumentNullException.ThrowIfNull(assembler);
        _page = Mmap(0, PageBytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (_page == -1)
        {
            throw new InvalidOperationException($"mmap of an executable page failed (errno {Marshal.GetLastPInvokeError()})");
        }

        var writer = new PageWriter((byte*)_page, (int)PageBytes);
        assembler.Assemble(writer, (ulong)_page);
        if (Mprotect(_page, PageBytes, ProtRead | ProtExec) != 0)
        {
            throw new InvalidOperationException($"mprotect to PROT_EXEC failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>True when this process can run x86-64 code natively (Linux on x86-64).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>Calls the code as <c>void f(ulong* state)</c> (SysV: <paramref name="state"/> in RDI).</summary>
    public void Call(ulong* state) => ((delegate* unmanaged<ulong*, void>)_page)(state);

    /// <summary>Unmaps the page.</summary>
    public void Dispose() => _ = Munmap(_page, PageBytes);

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static extern int Mprotect(nint address, nuint length, int protection);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(nint address, nuint length);

    /// <summary>An Iced code writer into the mapped page, bounds-checked.</summary>
    private sealed class PageWriter(byte* start, int capacity) : CodeWriter
    {
        private int _length;

        public override void WriteByte(byte value)
        {
            if (_length == capacity)
            {
                throw new InvalidOperationException("native code does not fit in one page");
            }

            start[_length++] = value;
        }
    }
}
