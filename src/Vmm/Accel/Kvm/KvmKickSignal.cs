using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The signal that kicks a vCPU thread out of KVM_RUN: real-time signal SIGRTMAX−3, installed once per process with
/// libc <c>sigaction</c> and SA_RESTART, whose handler is a one-byte <c>ret</c> in a page of its own. The handler is
/// native so that a signal arriving at any point never enters managed code (a managed handler could block on a GC from
/// inside a signal frame); SA_RESTART keeps the signal invisible to other system calls, while KVM_RUN still returns
/// EINTR because the kernel never restarts it. .NET uses SIGRTMIN for its own thread activation and does not touch
/// SIGRTMAX−3; if anything else has installed a handler there, installation refuses rather than replace it.
/// </summary>
// unsafe: sigaction takes pointers, and the handler page is written through a pointer.
internal static unsafe class KvmKickSignal
{
    private const int SaRestart = 0x10000000;
    private const byte RetOpcode = 0xC3;

    private static readonly object Gate = new();
    private static int _signal;

    /// <summary>The kick signal's number, installing its handler on first use.</summary>
    /// <exception cref="KvmUnavailableException">The handler could not be installed.</exception>
    public static int Signal
    {
        get
        {
            var installed = Volatile.Read(ref _signal);
            return installed != 0 ? installed : Install();
        }
    }

    /// <summary>Unblocks the kick signal on the calling thread, so a kick sent to it interrupts KVM_RUN.</summary>
    /// <exception cref="KvmUnavailableException">pthread_sigmask failed.</exception>
    public static void UnblockOnCurrentThread()
    {
        var signal = Signal;
        var set = stackalloc ulong[KvmNative.SigsetWords];
        new Span<ulong>(set, KvmNative.SigsetWords).Clear();
        set[(signal - 1) / 64] = 1UL << ((signal - 1) % 64);
        var error = KvmNative.PthreadSigmask(KvmNative.SigUnblock, set, null);
        if (error != 0)
        {
            throw new KvmUnavailableException($"pthread_sigmask(SIG_UNBLOCK, {signal})", error, null);
        }
    }

    private static int Install()
    {
        lock (Gate)
        {
            if (_signal != 0)
            {
                return _signal;
            }

            var signal = KvmNative.CurrentSigRtMax() - 3;
            KernelSigaction old;
            if (KvmNative.Sigaction(signal, null, &old) != 0)
            {
                throw new KvmUnavailableException($"sigaction({signal}) query", Marshal.GetLastPInvokeError(), "the vCPU kick signal cannot be inspected");
            }

            if (old.Handler is not 0 and not 1)
            {
                throw new KvmUnavailableException(
                    $"signal {signal} (SIGRTMAX-3) already has a handler at 0x{old.Handler:x}: the kvm accelerator uses it to kick vCPUs out of KVM_RUN and will not replace another component's handler");
            }

            var page = KvmNative.Mmap(0, 4096, KvmNative.ProtRead | KvmNative.ProtWrite, KvmNative.MapPrivate | KvmNative.MapAnonymous, -1, 0);
            if (page == KvmNative.MapFailed)
            {
                throw new KvmUnavailableException("mmap of the kick handler page", Marshal.GetLastPInvokeError(), null);
            }

            *(byte*)page = RetOpcode;
            if (KvmNative.Mprotect(page, 4096, KvmNative.ProtRead | KvmNative.ProtExec) != 0)
            {
                throw new KvmUnavailableException("mprotect of the kick handler page", Marshal.GetLastPInvokeError(), "the process may forbid executable anonymous memory");
            }

            var action = new KernelSigaction { Handler = page, Flags = SaRestart };
            if (KvmNative.Sigaction(signal, &action, null) != 0)
            {
                throw new KvmUnavailableException($"sigaction({signal}) install", Marshal.GetLastPInvokeError(), null);
            }

            Volatile.Write(ref _signal, signal);
            return signal;
        }
    }
}
