using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// A VM on the real /dev/kvm: anonymous mmap'ed RAM registered as memslot 0 at guest-physical 0, the vCPUs with the
/// host's supported CPUID, and a run loop that sends port I/O and MMIO exits to the same <see cref="DeviceBus"/> the
/// interpreter uses. There is no in-kernel irqchip, so the local APIC page, PIC ports and HLT all reach user space.
/// </summary>
/// <remarks>
/// <para>Threads: <see cref="Run"/> runs one vCPU on the calling thread, one call at a time per vCPU; different vCPUs
/// may run on different threads at once (the VM runs only the bootstrap processor today: the others stay where a real
/// AP waits for its start-up IPI, which the device set does not deliver). A stop request from another thread (the VM's
/// timeout or cancellation) is delivered by <see cref="KvmRunWatchdog"/>: kvm_run.immediate_exit plus a no-op signal
/// (<see cref="KvmKickSignal"/>) sent to the vCPU's thread, so a guest spinning without exits still stops. Run unblocks
/// that signal on the calling thread.</para>
/// <para>Layout: RAM must end at or below <see cref="MaxMemoryBytes"/>, keeping the 32-bit MMIO hole (local APIC) and
/// the TSS pages KVM needs on Intel without unrestricted guest (<see cref="TssAddress"/>; KVM places its identity-map page just below them) out of RAM.</para>
/// </remarks>
public sealed class KvmMachine : IDisposable
{
    /// <summary>Largest guest RAM: 3 GiB, below the 32-bit MMIO hole.</summary>
    public const ulong MaxMemoryBytes = 0xC000_0000;

    /// <summary>Guest-physical address of the three pages KVM_SET_TSS_ADDR reserves (QEMU's choice).</summary>
    public const ulong TssAddress = 0xFFFB_D000;

    /// <summary>Most vCPUs a machine may have (the xAPIC id limit).</summary>
    public const int MaxCpuCount = 255;

    /// <summary>True when the machine has the kernel's interrupt controllers (KVM_CREATE_IRQCHIP): with more than one vCPU.</summary>
    public bool HasIrqchip => CpuCount > 1;

    private const int PageSize = 4096;
    private const int InitialCpuidEntries = 128;
    private const int MaxCpuidEntries = 4096;

    private readonly ILogger _logger;
    private readonly int[] _vcpuFds;
    private readonly nint[] _runs;
    private readonly int[] _running;
    private readonly long[] _exits;
    private readonly long[] _portIoExits;
    private readonly long[] _mmioExits;
    private int _systemFd = -1;
    private int _vmFd = -1;
    private nint _ram;
    private nuint _runSize;
    private int _disposed;

    /// <summary>Creates the VM, its RAM and its vCPUs.</summary>
    /// <param name="memoryBytes">Guest RAM in bytes: a non-zero multiple of 4 KiB, at most <see cref="MaxMemoryBytes"/>.</param>
    /// <param name="cpuCount">vCPUs to create, 1 to <see cref="MaxCpuCount"/>.</param>
    /// <param name="logger">Where creation and stops are logged at Debug level; null for none.</param>
    /// <exception cref="ArgumentOutOfRangeException">The memory size or CPU count is out of range.</exception>
    /// <exception cref="KvmUnavailableException">/dev/kvm is missing or a KVM call failed; the message names the ioctl and errno.</exception>
    public KvmMachine(ulong memoryBytes, int cpuCount = 1, ILogger? logger = null)
    {
        if (memoryBytes == 0 || memoryBytes % PageSize != 0 || memoryBytes > MaxMemoryBytes)
        {
            throw new ArgumentOutOfRangeException(
                nameof(memoryBytes),
                memoryBytes,
                $"guest RAM of 0x{memoryBytes:x} bytes is invalid: it must be a non-zero multiple of 4 KiB and at most 0x{MaxMemoryBytes:x} bytes (3 GiB, below the MMIO hole)");
        }

        if (cpuCount is < 1 or > MaxCpuCount)
        {
            throw new ArgumentOutOfRangeException(nameof(cpuCount), cpuCount, $"CPU count {cpuCount} is invalid: a machine has 1 to {MaxCpuCount} vCPUs");
        }

        _logger = logger ?? NullLogger.Instance;
        _vcpuFds = new int[cpuCount];
        _runs = new nint[cpuCount];
        _running = new int[cpuCount];
        _exits = new long[cpuCount];
        _portIoExits = new long[cpuCount];
        _mmioExits = new long[cpuCount];
        Array.Fill(_vcpuFds, -1);
        MemorySize = memoryBytes;
        CpuCount = cpuCount;
        try
        {
            _systemFd = KvmAvailability.OpenChecked();
            Create();
        }
        catch
        {
            Release();
            GC.SuppressFinalize(this);
            throw;
        }

        Memory = new KvmGuestMemory(this, _ram, memoryBytes);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            _logger.LogDebug(
                "kvm: VM created with {Ram} MiB at host 0x{Host:x}, {Cpus} vCPU(s), kvm_run of {RunSize} bytes",
                memoryBytes >> 20,
                _ram,
                cpuCount,
                _runSize);
        }
    }

    /// <summary>Releases the VM if <see cref="Dispose"/> was not called.</summary>
    ~KvmMachine()
    {
        Release();
    }

    /// <summary>Guest RAM, over the mmap'ed memory KVM maps into the guest; bounds-checked.</summary>
    public IGuestPhysicalMemory Memory { get; }

    /// <summary>Bytes of guest RAM.</summary>
    public ulong MemorySize { get; }

    /// <summary>vCPUs created.</summary>
    public int CpuCount { get; }

    /// <summary>Loads <paramref name="state"/> into a vCPU: segment caches, GDTR/IDTR, CR0/3/4, EFER and the general registers.</summary>
    /// <param name="vcpuId">The vCPU, 0 to <see cref="CpuCount"/> - 1.</param>
    /// <param name="state">The boot protocol's state; RFLAGS bit 1 is forced on.</param>
    /// <exception cref="KvmUnavailableException">KVM rejected the state (e.g. EFER.LME without CPUID long mode); the message names the ioctl.</exception>
    /// <exception cref="InvalidOperationException"><see cref="Run"/> is in progress on that vCPU.</exception>
    public void SetInitialState(int vcpuId, in InitialCpuState state)
    {
        ThrowIfDisposed();
        CheckVcpu(vcpuId);
        if (Volatile.Read(ref _running[vcpuId]) != 0)
        {
            throw new InvalidOperationException($"vCPU {vcpuId}'s state cannot be set while Run is in progress on it: wait for Run to return");
        }

        var fd = _vcpuFds[vcpuId];
        var sregs = default(KvmSregs);
        Ioctl(fd, KvmIoctl.GetSregs, ref sregs, "KVM_GET_SREGS");
        sregs.Cs = KvmSegment.From(state.Cs);
        sregs.Ds = KvmSegment.From(state.Ds);
        sregs.Es = KvmSegment.From(state.Es);
        sregs.Fs = KvmSegment.From(state.Fs);
        sregs.Gs = KvmSegment.From(state.Gs);
        sregs.Ss = KvmSegment.From(state.Ss);
        sregs.Tr = KvmSegment.From(state.Tr);
        sregs.Gdt = new KvmDtable { Base = state.GdtBase, Limit = state.GdtLimit };
        sregs.Idt = new KvmDtable { Base = state.IdtBase, Limit = state.IdtLimit };
        sregs.Cr0 = state.Cr0;
        sregs.Cr3 = state.Cr3;
        sregs.Cr4 = state.Cr4;
        sregs.Efer = state.Efer;
        Ioctl(fd, KvmIoctl.SetSregs, ref sregs, "KVM_SET_SREGS", "KVM rejected the segment or control-register state");

        var regs = new KvmRegs
        {
            Rax = state.Rax,
            Rbx = state.Rbx,
            Rsi = state.Rsi,
            Rdi = state.Rdi,
            Rsp = state.Rsp,
            Rbp = state.Rbp,
            Rip = state.Rip,
            Rflags = state.Rflags | InitialCpuState.RflagsReserved,
        };
        Ioctl(fd, KvmIoctl.SetRegs, ref regs, "KVM_SET_REGS");
    }

    /// <summary>
    /// Runs a vCPU until a device posts a stop, the guest halts, shuts down or hits an exit KVM cannot handle, or
    /// <paramref name="stop"/> is cancelled. Port I/O and MMIO exits go to <paramref name="bus"/>;
    /// <paramref name="signal"/> is checked before entering the guest and after every exit.
    /// </summary>
    /// <param name="vcpuId">The vCPU, 0 to <see cref="CpuCount"/> - 1.</param>
    /// <param name="bus">The device bus (typically with <see cref="PcDevices"/> attached).</param>
    /// <param name="signal">The stop signal the bus's devices post to.</param>
    /// <param name="stop">Stops the run with <see cref="VmStopKind.Cancelled"/>, even from inside the guest.</param>
    /// <returns>Why the run stopped; <see cref="CountersOf"/> has the exits.</returns>
    /// <exception cref="InvalidOperationException">Another thread is already in <see cref="Run"/> on this vCPU.</exception>
    /// <exception cref="KvmUnavailableException">KVM_RUN failed with an error other than EINTR/EAGAIN.</exception>
    /// <remarks>An exception thrown by a device propagates out of Run; the vCPU then stays at the exit it was handling.</remarks>
    public VcpuExit Run(int vcpuId, DeviceBus bus, VmStopSignal signal, CancellationToken stop = default)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(signal);
        ThrowIfDisposed();
        CheckVcpu(vcpuId);
        if (Interlocked.Exchange(ref _running[vcpuId], 1) != 0)
        {
            throw new InvalidOperationException($"Run is already in progress on vCPU {vcpuId} on another thread: a vCPU runs on one thread at a time");
        }

        try
        {
            return RunLoop(vcpuId, bus, signal, stop);
        }
        finally
        {
            Volatile.Write(ref _running[vcpuId], 0);
        }
    }

    /// <summary>A vCPU's exits so far (readable from any thread while it runs).</summary>
    /// <param name="vcpuId">The vCPU, 0 to <see cref="CpuCount"/> - 1.</param>
    public VcpuCounters CountersOf(int vcpuId)
    {
        CheckVcpu(vcpuId);
        return new VcpuCounters
        {
            Exits = Volatile.Read(ref _exits[vcpuId]),
            PortIo = Volatile.Read(ref _portIoExits[vcpuId]),
            Mmio = Volatile.Read(ref _mmioExits[vcpuId]),
        };
    }

    /// <summary>
    /// Marks guest RAM mergeable for the real kernel's KSM (<c>madvise(MADV_MERGEABLE)</c>, as QEMU's
    /// <c>mem-merge=on</c>); the kernel's ksmd then merges equal guest pages whenever its <c>run</c> is 1.
    /// </summary>
    /// <exception cref="KvmUnavailableException">The kernel refused the advice (no CONFIG_KSM).</exception>
    public void MarkMergeable()
    {
        ThrowIfDisposed();
        if (KvmNative.Madvise(_ram, (nuint)MemorySize, KvmNative.MadvMergeable) != 0)
        {
            throw new KvmUnavailableException($"madvise(MADV_MERGEABLE) of {MemorySize >> 20} MiB guest RAM", Marshal.GetLastPInvokeError(), null);
        }
    }

    /// <summary>Closes the vCPUs and the VM and unmaps guest RAM; <see cref="Memory"/> then throws.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Run"/> is in progress (cancel it and wait for it first).</exception>
    public void Dispose()
    {
        if (IsRunning())
        {
            throw new InvalidOperationException("the machine cannot be disposed while Run is in progress: cancel the run and wait for it to return");
        }

        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the machine is disposed.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>A vCPU's general registers.</summary>
    internal KvmRegs GetRegisters(int vcpuId)
    {
        ThrowIfDisposed();
        CheckVcpu(vcpuId);
        var regs = default(KvmRegs);
        Ioctl(_vcpuFds[vcpuId], KvmIoctl.GetRegs, ref regs, "KVM_GET_REGS");
        return regs;
    }

    /// <summary>A vCPU's special registers.</summary>
    internal KvmSregs GetSpecialRegisters(int vcpuId)
    {
        ThrowIfDisposed();
        CheckVcpu(vcpuId);
        var sregs = default(KvmSregs);
        Ioctl(_vcpuFds[vcpuId], KvmIoctl.GetSregs, ref sregs, "KVM_GET_SREGS");
        return sregs;
    }

    private bool IsRunning()
    {
        for (var id = 0; id < _running.Length; id++)
        {
            if (Volatile.Read(ref _running[id]) != 0)
            {
                return true;
            }
        }

        return false;
    }

    private void CheckVcpu(int vcpuId)
    {
        if ((uint)vcpuId >= (uint)CpuCount)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpuId), vcpuId, $"vCPU {vcpuId} does not exist: this machine has vCPUs 0 to {CpuCount - 1}");
        }
    }

    // Pointer access to the mapped kvm_run page: its layout is the kernel's, shared with the running vCPU.
    private unsafe VcpuExit RunLoop(int vcpuId, DeviceBus bus, VmStopSignal signal, CancellationToken stop)
    {
        var run = (KvmRunHeader*)_runs[vcpuId];
        var fd = _vcpuFds[vcpuId];
        KvmKickSignal.UnblockOnCurrentThread();
        var watchdog = new KvmRunWatchdog(run, KvmNative.PthreadSelf(), KvmKickSignal.Signal);
        Volatile.Write(ref run->ImmediateExit, 0);
        var registration = stop.Register(static w => ((KvmRunWatchdog)w!).Fire(), watchdog);
        try
        {
            while (true)
            {
                if (signal.Request is { } request)
                {
                    return Result(VmStopKind.GuestExit, request.ToString());
                }

                if (watchdog.Fired || stop.IsCancellationRequested)
                {
                    return Result(VmStopKind.Cancelled, "the run was cancelled");
                }

                if (KvmNative.Ioctl(fd, KvmIoctl.Run, 0) < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno is KvmNative.Eintr or KvmNative.Eagain)
                    {
                        continue;
                    }

                    throw new KvmUnavailableException("KVM_RUN", errno, "the vCPU could not run");
                }

                Volatile.Write(ref _exits[vcpuId], _exits[vcpuId] + 1);
                var reason = (KvmExitReason)run->ExitReason;
                switch (reason)
                {
                    case KvmExitReason.Io:
                        Volatile.Write(ref _portIoExits[vcpuId], _portIoExits[vcpuId] + 1);
                        HandlePortIo(bus, (byte*)run);
                        break;
                    case KvmExitReason.Mmio:
                        Volatile.Write(ref _mmioExits[vcpuId], _mmioExits[vcpuId] + 1);
                        HandleMmio(bus, (KvmRunMmio*)((byte*)run + KvmRunHeader.ExitUnionOffset));
                        break;
                    case KvmExitReason.Intr:
                        break;
                    case KvmExitReason.Hlt:
                        return Result(VmStopKind.Halted, "the guest executed HLT with no interrupt source to wake it (KVM_EXIT_HLT)");
                    case KvmExitReason.Shutdown:
                        return Result(VmStopKind.Shutdown, "the guest shut down its CPU, usually a triple fault (KVM_EXIT_SHUTDOWN)");
                    case KvmExitReason.FailEntry:
                        var fail = (KvmRunFailEntry*)((byte*)run + KvmRunHeader.ExitUnionOffset);
                        return Result(VmStopKind.InternalError, KvmExitDetail.FailEntry(fail->HardwareEntryFailureReason, fail->Cpu), "FailEntry");
                    case KvmExitReason.InternalError:
                        return Result(VmStopKind.InternalError, InternalErrorDetail((KvmRunInternal*)((byte*)run + KvmRunHeader.ExitUnionOffset)), "InternalError");
                    default:
                        return Result(VmStopKind.InternalError, $"KVM exit reason {reason} ({run->ExitReason}) is not handled by the kvm accelerator", "UnhandledExit");
                }
            }
        }
        finally
        {
            watchdog.Disarm();
            registration.Dispose();
        }

        VcpuExit Result(VmStopKind kind, string detail, string? cause = null)
        {
            var exit = new VcpuExit(kind, detail, cause);
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                _logger.LogDebug("kvm: vCPU {Vcpu} stopped: {Exit}; {Counters}", vcpuId, exit, CountersOf(vcpuId));
            }

            return exit;
        }
    }

    // Pointer access to the I/O data area of the mapped kvm_run page.
    private static unsafe void HandlePortIo(DeviceBus bus, byte* run)
    {
        var io = (KvmRunIo*)(run + KvmRunHeader.ExitUnionOffset);
        var size = io->Size;
        var data = run + io->DataOffset;
        for (var i = 0u; i < io->Count; i++)
        {
            var item = data + (i * size);
            if (io->Direction == KvmRunIo.DirectionOut)
            {
                var value = size switch
                {
                    1 => *item,
                    2 => Unsafe.ReadUnaligned<ushort>(item),
                    _ => Unsafe.ReadUnaligned<uint>(item),
                };
                bus.WritePort(io->Port, size, value);
            }
            else
            {
                var value = bus.ReadPort(io->Port, size);
                switch (size)
                {
                    case 1:
                        *item = (byte)value;
                        break;
                    case 2:
                        Unsafe.WriteUnaligned(item, (ushort)value);
                        break;
                    default:
                        Unsafe.WriteUnaligned(item, value);
                        break;
                }
            }
        }
    }

    // Pointer access to the mmio member of the mapped kvm_run page.
    private static unsafe void HandleMmio(DeviceBus bus, KvmRunMmio* mmio)
    {
        var length = (int)Math.Min(mmio->Len, (uint)KvmRunMmio.MaxLength);
        var data = new Span<byte>(mmio->Data, length);
        if (mmio->IsWrite != 0)
        {
            bus.WriteMmio(mmio->PhysAddr, data);
        }
        else
        {
            bus.ReadMmio(mmio->PhysAddr, data);
        }
    }

    // Pointer access to the internal-error member of the mapped kvm_run page.
    private static unsafe string InternalErrorDetail(KvmRunInternal* error) =>
        KvmExitDetail.InternalError(error->Suberror, error->Ndata, new ReadOnlySpan<ulong>(error->Data, KvmRunInternal.MaxData));

    // Pointer arguments to ioctl: the structures are blittable and pinned on the stack or in native memory.
    private static unsafe void Ioctl<T>(int fd, nuint request, ref T argument, string name, string? hint = null)
        where T : unmanaged
    {
        fixed (T* pointer = &argument)
        {
            if (KvmNative.Ioctl(fd, request, pointer) < 0)
            {
                throw new KvmUnavailableException(name, Marshal.GetLastPInvokeError(), hint);
            }
        }
    }

    private static int IoctlValue(int fd, nuint request, nint argument, string name, string? hint = null)
    {
        var result = KvmNative.Ioctl(fd, request, argument);
        if (result < 0)
        {
            throw new KvmUnavailableException(name, Marshal.GetLastPInvokeError(), hint);
        }

        return result;
    }

    // Pointer access to the memslot descriptor and the CPUID buffer handed to the kernel.
    private unsafe void Create()
    {
        _vmFd = IoctlValue(_systemFd, KvmIoctl.CreateVm, 0, "KVM_CREATE_VM", "the kernel refused to create a VM");
        IoctlValue(_vmFd, KvmIoctl.SetTssAddr, unchecked((nint)TssAddress), "KVM_SET_TSS_ADDR");
        if (HasIrqchip)
        {
            // Several vCPUs wake and start each other with IPIs: the kernel's local APICs do it (INIT–SIPI included; the
            // application processors wait in KVM_RUN until then). One vCPU keeps user-space HLT exits instead, so a halt
            // nothing can wake still ends the run (an in-kernel APIC would sleep in the kernel for good).
            IoctlValue(_vmFd, KvmIoctl.CreateIrqchip, 0, "KVM_CREATE_IRQCHIP", "the kernel refused the in-kernel interrupt controllers");
        }

        _ram = KvmNative.Mmap(
            0,
            (nuint)MemorySize,
            KvmNative.ProtRead | KvmNative.ProtWrite,
            KvmNative.MapPrivate | KvmNative.MapAnonymous | KvmNative.MapNoReserve,
            -1,
            0);
        if (_ram == KvmNative.MapFailed)
        {
            _ram = 0;
            throw new KvmUnavailableException($"mmap of {MemorySize >> 20} MiB guest RAM", Marshal.GetLastPInvokeError(), null);
        }

        var region = new KvmUserspaceMemoryRegion
        {
            Slot = 0,
            Flags = 0,
            GuestPhysAddr = 0,
            MemorySize = MemorySize,
            UserspaceAddr = (ulong)_ram,
        };
        Ioctl(_vmFd, KvmIoctl.SetUserMemoryRegion, ref region, "KVM_SET_USER_MEMORY_REGION", "KVM refused memslot 0");

        var mmapSize = IoctlValue(_systemFd, KvmIoctl.GetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE");
        if (mmapSize < KvmRunHeader.KernelSize + KvmRunInternal.KernelSize)
        {
            throw new KvmUnavailableException($"KVM_GET_VCPU_MMAP_SIZE returned {mmapSize} bytes, too small for kvm_run");
        }

        _runSize = (nuint)mmapSize;
        var cpuid = SupportedCpuid(out var entryCount);
        try
        {
            for (var id = 0; id < CpuCount; id++)
            {
                _vcpuFds[id] = IoctlValue(_vmFd, KvmIoctl.CreateVcpu, id, $"KVM_CREATE_VCPU({id})");
                SetApicId(cpuid, entryCount, (uint)id);
                if (KvmNative.Ioctl(_vcpuFds[id], KvmIoctl.SetCpuid2, (void*)cpuid) < 0)
                {
                    throw new KvmUnavailableException($"KVM_SET_CPUID2 on vCPU {id}", Marshal.GetLastPInvokeError(), null);
                }

                var run = KvmNative.Mmap(0, _runSize, KvmNative.ProtRead | KvmNative.ProtWrite, KvmNative.MapShared, _vcpuFds[id], 0);
                if (run == KvmNative.MapFailed)
                {
                    throw new KvmUnavailableException($"mmap of kvm_run for vCPU {id}", Marshal.GetLastPInvokeError(), null);
                }

                _runs[id] = run;
            }
        }
        finally
        {
            NativeMemory.Free((void*)cpuid);
        }
    }

    // Pointer access to the variable-length kvm_cpuid2 buffer.
    private unsafe nint SupportedCpuid(out int entryCount)
    {
        for (var capacity = InitialCpuidEntries; capacity <= MaxCpuidEntries; capacity *= 2)
        {
            var bytes = (nuint)(KvmCpuid2Header.KernelSize + (capacity * KvmCpuidEntry2.KernelSize));
            var buffer = (byte*)NativeMemory.AllocZeroed(bytes);
            ((KvmCpuid2Header*)buffer)->Nent = (uint)capacity;
            if (KvmNative.Ioctl(_systemFd, KvmIoctl.GetSupportedCpuid, buffer) >= 0)
            {
                entryCount = (int)((KvmCpuid2Header*)buffer)->Nent;
                return (nint)buffer;
            }

            var errno = Marshal.GetLastPInvokeError();
            NativeMemory.Free(buffer);
            if (errno != KvmNative.E2big)
            {
                throw new KvmUnavailableException("KVM_GET_SUPPORTED_CPUID", errno, null);
            }
        }

        throw new KvmUnavailableException($"KVM_GET_SUPPORTED_CPUID wants more than {MaxCpuidEntries} entries");
    }

    // Pointer access to the CPUID entries that follow the kvm_cpuid2 head.
    private static unsafe void SetApicId(nint cpuid, int entryCount, uint apicId)
    {
        var entries = (KvmCpuidEntry2*)((byte*)cpuid + KvmCpuid2Header.KernelSize);
        for (var i = 0; i < entryCount; i++)
        {
            ref var entry = ref entries[i];
            switch (entry.Function)
            {
                case 0x1:
                    entry.Ebx = (entry.Ebx & 0x00FF_FFFF) | (apicId << 24);
                    break;
                case 0xB:
                case 0x1F:
                    entry.Edx = apicId;
                    break;
            }
        }
    }

    private void Release()
    {
        // A constructor that threw before the arrays existed leaves them null for the finalizer.
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || _runs is null || _vcpuFds is null)
        {
            return;
        }

        for (var id = 0; id < _runs.Length; id++)
        {
            if (_runs[id] != 0)
            {
                KvmNative.Munmap(_runs[id], _runSize);
                _runs[id] = 0;
            }

            if (_vcpuFds[id] >= 0)
            {
                KvmNative.Close(_vcpuFds[id]);
                _vcpuFds[id] = -1;
            }
        }

        if (_vmFd >= 0)
        {
            KvmNative.Close(_vmFd);
            _vmFd = -1;
        }

        if (_ram != 0)
        {
            KvmNative.Munmap(_ram, (nuint)MemorySize);
            _ram = 0;
        }

        if (_systemFd >= 0)
        {
            KvmNative.Close(_systemFd);
            _systemFd = -1;
        }
    }
}
