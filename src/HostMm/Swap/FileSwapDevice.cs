using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A swap file: a real file sized up front (its blocks preallocated where the file system can, as <c>swapon</c>
/// wants a file without holes), slot 0 holding a Linux-style header, data read and written with
/// <see cref="RandomAccess"/> on one <see cref="SafeFileHandle"/> at page-aligned offsets, a run of contiguous
/// slots in one OS call. On Linux a gathered run (<see cref="IVectoredSwapDevice"/>) is one <c>pwritev</c> or
/// <c>preadv</c> whose iovecs point straight at the frames; where that call is refused (EINVAL, ENOSYS, EOPNOTSUPP) the
/// device stops using it and copies through a bounce buffer instead, as it does off Linux. With no path, the file is created in the temp folder with a unique name and deleted on
/// <see cref="Dispose"/>; a file at a user path is kept. Buffered (the default), the OS page cache sits beneath and
/// nothing is synced, since swap contents do not outlive the process; with direct I/O (<c>O_DIRECT</c>, Linux) every
/// transfer goes to the disk past the page cache, as Linux's own swap I/O does, so swapped pages really leave RAM.
/// </summary>
/// <remarks>
/// Thread safety: as <see cref="ISwapDevice"/> (positional reads and writes share no file position). The device
/// takes no lock of its own; counters and the vectored switch are interlocked. Direct I/O needs 4096-aligned memory:
/// frames are, and a caller's span that is not is copied through an aligned buffer for that call.
/// </remarks>
public sealed class FileSwapDevice : IVectoredSwapDevice
{
    private const int PageSize = (int)Paging.PageSize;

    // Linux errno ENOSPC (the HResult .NET gives an IOException on Unix), Windows ERROR_HANDLE_DISK_FULL and ERROR_DISK_FULL.
    private const int Enospc = 28;
    private const int ErrorHandleDiskFull = unchecked((int)0x80070027);
    private const int ErrorDiskFull = unchecked((int)0x80070070);

    /// <summary>Iovecs per vectored call: a 32-page reclaim run or an 8-page readahead window is one call; longer runs loop.</summary>
    private const int MaxIovecs = 64;

    private readonly SafeFileHandle _handle;
    private readonly IVectoredFileIo? _vectored;
    private int _vectoredRefused;
    private long _vectoredCalls;
    private long _pagesRead;
    private long _pagesWritten;
    private long _readCalls;
    private long _writeCalls;
    private long _pagesDiscarded;
    private long _readErrors;
    private long _writeErrors;
    private int _disposed;

    /// <summary>
    /// Creates the swap file: a new unique file in the temp folder when <paramref name="path"/> is null (deleted on
    /// dispose), else the file at <paramref name="path"/> — created, or reused when it is empty or already a swap
    /// file made by this program (kept on dispose).
    /// </summary>
    /// <param name="path">The file's path, or null for a temporary file.</param>
    /// <param name="sizeBytes">The file's size, header slot included (see <see cref="SwapOptions.SizeBytes"/>).</param>
    /// <param name="directIo">Transfer with <c>O_DIRECT</c>, past the OS page cache (see <see cref="SwapOptions.DirectIo"/>).</param>
    /// <exception cref="SwapConfigurationException">The size breaks a rule, the file cannot be created at the path, the path is a file that is not a swap file, the disk has less free space than the size, or direct I/O was asked for and the file system or OS cannot do it.</exception>
    public FileSwapDevice(string? path, ulong sizeBytes, bool directIo = false)
        : this(path, sizeBytes, OperatingSystem.IsLinux() ? LinuxVectoredFileIo.Instance : null, directIo)
    {
    }

    /// <summary>As the public constructor, with the vectored calls to make (null: none, always the bounce buffer).</summary>
    internal FileSwapDevice(string? path, ulong sizeBytes, IVectoredFileIo? vectored, bool directIo = false)
    {
        _vectored = vectored;
        IsDirectIo = directIo;
        SlotCount = SwapOptions.ValidateSize(sizeBytes, nameof(sizeBytes));
        IsTemporary = path is null;
        Path = path is null
            ? System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"hv-swap-{Environment.ProcessId}-{Guid.NewGuid():N}.swap")
            : FullPath(path);
        _handle = Open(Path, sizeBytes, IsTemporary, directIo);
        Name = "file:" + Path + (directIo ? " (O_DIRECT)" : string.Empty);
    }

    /// <summary>True when transfers bypass the OS page cache (<c>O_DIRECT</c>).</summary>
    public bool IsDirectIo { get; }

    /// <summary>The swap file's full path.</summary>
    public string Path { get; }

    /// <summary>True when the file is a temporary one that <see cref="Dispose"/> deletes.</summary>
    public bool IsTemporary { get; }

    /// <inheritdoc />
    public ulong SlotCount { get; }

    /// <summary>
    /// True while gathered transfers go straight to the frames with <c>pwritev</c>/<c>preadv</c>: on Linux, until the
    /// OS refuses a call with EINVAL, ENOSYS or EOPNOTSUPP (or the runtime cannot bind them in libc); false off Linux. When false they go through a bounce buffer.
    /// </summary>
    public bool IsVectoredIoActive => _vectored is not null && Volatile.Read(ref _vectoredRefused) == 0;

    /// <summary>Vectored system calls made (a short transfer's continuation counts again; EINTR retries too).</summary>
    public long VectoredCalls => Volatile.Read(ref _vectoredCalls);

    /// <inheritdoc />
    public bool IsSynchronous => false;

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public SwapIoResult Read(ulong slot, Span<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        return ReadCore(slot, page);
    }

    /// <inheritdoc />
    public SwapIoResult Write(ulong slot, ReadOnlySpan<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        return WriteCore(slot, page);
    }

    /// <inheritdoc />
    public SwapIoResult ReadRun(ulong firstSlot, Span<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        var result = ReadCore(firstSlot, pages);
        if (result.IsOk || count == 1)
        {
            return result;
        }

        // The run failed as a whole; page by page finds the first slot that fails, so the pages before it are read.
        for (var i = 0; i < count; i++)
        {
            var slot = firstSlot + (ulong)i;
            var single = ReadCore(slot, pages.Slice(i * PageSize, PageSize));
            if (!single.IsOk)
            {
                return single;
            }
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    public SwapIoResult WriteRun(ulong firstSlot, ReadOnlySpan<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        var result = WriteCore(firstSlot, pages);
        if (result.IsOk || count == 1)
        {
            return result;
        }

        for (var i = 0; i < count; i++)
        {
            var single = WriteCore(firstSlot + (ulong)i, pages.Slice(i * PageSize, PageSize));
            if (!single.IsOk)
            {
                return single;
            }
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    /// <remarks>One <c>pwritev</c> per 64 pages, continued after a short write; ENOSPC is <see cref="SwapIoStatus.DeviceFull"/>, any other error <see cref="SwapIoStatus.IoError"/>.</remarks>
    public SwapIoResult WriteGather(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        SwapGather.Check(this, firstSlot, pages);
        if (!IsVectoredIoActive)
        {
            return SwapGather.WriteBounced(this, firstSlot, pages);
        }

        Interlocked.Increment(ref _writeCalls);
        var result = Vectored(write: true, firstSlot, pages, out var done, out var refused);
        Interlocked.Add(ref _pagesWritten, done);
        if (refused)
        {
            Volatile.Write(ref _vectoredRefused, 1);
            return SwapGather.WriteBounced(this, firstSlot + (ulong)done, pages[done..]);
        }

        if (!result.IsOk)
        {
            Interlocked.Increment(ref _writeErrors);
        }

        return result;
    }

    /// <inheritdoc />
    /// <remarks>One <c>preadv</c> per 64 pages, continued after a short read; end of file before the run's end (a file truncated behind the device) and every error are <see cref="SwapIoStatus.IoError"/>.</remarks>
    public SwapIoResult ReadScatter(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        SwapGather.Check(this, firstSlot, pages);
        if (!IsVectoredIoActive)
        {
            return SwapGather.ReadBounced(this, firstSlot, pages);
        }

        Interlocked.Increment(ref _readCalls);
        var result = Vectored(write: false, firstSlot, pages, out var done, out var refused);
        Interlocked.Add(ref _pagesRead, done);
        if (refused)
        {
            Volatile.Write(ref _vectoredRefused, 1);
            return SwapGather.ReadBounced(this, firstSlot + (ulong)done, pages[done..]);
        }

        if (!result.IsOk)
        {
            Interlocked.Increment(ref _readErrors);
        }

        return result;
    }

    /// <inheritdoc />
    /// <remarks>The file keeps its blocks (no hole is punched: a swap file stays fully allocated).</remarks>
    public void Discard(ulong firstSlot, int count = 1)
    {
        SwapDeviceGuard.CheckSlots(this, firstSlot, count);
        Interlocked.Add(ref _pagesDiscarded, count);
    }

    /// <inheritdoc />
    public SwapDeviceStats GetStats() => new()
    {
        PagesRead = Volatile.Read(ref _pagesRead),
        PagesWritten = Volatile.Read(ref _pagesWritten),
        ReadCalls = Volatile.Read(ref _readCalls),
        WriteCalls = Volatile.Read(ref _writeCalls),
        PagesDiscarded = Volatile.Read(ref _pagesDiscarded),
        ReadErrors = Volatile.Read(ref _readErrors),
        WriteErrors = Volatile.Read(ref _writeErrors),
    };

    /// <summary>Closes the file; a temporary file is deleted. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _handle.Dispose();
        if (IsTemporary)
        {
            try
            {
                File.Delete(Path);
            }
            catch (IOException)
            {
                // Already gone with FileOptions.DeleteOnClose, or the temp folder is read-only now: nothing to undo.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    private SwapIoResult ReadCore(ulong firstSlot, Span<byte> buffer)
    {
        if (IsDirectIo && !IsPageAligned(buffer))
        {
            return ReadAligned(firstSlot, buffer);
        }

        Interlocked.Increment(ref _readCalls);
        var offset = (long)(firstSlot * Paging.PageSize);
        try
        {
            var done = 0;
            while (done < buffer.Length)
            {
                var n = RandomAccess.Read(_handle, buffer[done..], offset + done);
                if (n <= 0)
                {
                    // The file is shorter than the device (truncated behind our back): the slot cannot be read.
                    Interlocked.Increment(ref _readErrors);
                    return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)(done / PageSize));
                }

                done += n;
            }
        }
        catch (IOException)
        {
            Interlocked.Increment(ref _readErrors);
            return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot);
        }

        Interlocked.Add(ref _pagesRead, buffer.Length / PageSize);
        return SwapIoResult.Success;
    }

    private SwapIoResult WriteCore(ulong firstSlot, ReadOnlySpan<byte> buffer)
    {
        if (IsDirectIo && !IsPageAligned(buffer))
        {
            return WriteAligned(firstSlot, buffer);
        }

        Interlocked.Increment(ref _writeCalls);
        try
        {
            RandomAccess.Write(_handle, buffer, (long)(firstSlot * Paging.PageSize));
        }
        catch (IOException ex)
        {
            Interlocked.Increment(ref _writeErrors);
            return SwapIoResult.Failed(IsDiskFull(ex) ? SwapIoStatus.DeviceFull : SwapIoStatus.IoError, firstSlot);
        }

        Interlocked.Add(ref _pagesWritten, buffer.Length / PageSize);
        return SwapIoResult.Success;
    }

    /// <summary>
    /// The vectored transfer of <paramref name="pages"/>: calls until every byte moved, each continuing where the last
    /// stopped (mid-page after a short transfer). <paramref name="done"/> is the pages wholly transferred; on failure
    /// the result names the slot after them. <paramref name="refused"/> is set, with nothing more transferred, when
    /// the OS refuses the call itself, so the caller can fall back.
    /// </summary>
    // unsafe: the iovecs are a stack array pointing at the caller's native pages.
    private unsafe SwapIoResult Vectored(bool write, ulong firstSlot, ReadOnlySpan<nint> pages, out int done, out bool refused)
    {
        var io = _vectored!;
        var iov = stackalloc Iovec[MaxIovecs];
        done = 0;
        refused = false;
        var partial = 0; // bytes of pages[done] already transferred
        while (done < pages.Length)
        {
            var n = Math.Min(MaxIovecs, pages.Length - done);
            for (var j = 0; j < n; j++)
            {
                iov[j].Base = pages[done + j];
                iov[j].Length = PageSize;
            }

            iov[0].Base += partial;
            iov[0].Length -= (nuint)partial;
            var offset = (long)((firstSlot + (ulong)done) * Paging.PageSize) + partial;
            Interlocked.Increment(ref _vectoredCalls);
            long moved;
            int errno;
            try
            {
                moved = write ? io.Write(_handle, iov, n, offset, out errno) : io.Read(_handle, iov, n, offset, out errno);
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                // A libc the runtime cannot load, or one without the calls: as if the OS refused them.
                refused = true;
                return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)done);
            }

            if (moved < 0)
            {
                switch (errno)
                {
                    case LinuxVectoredFileIo.Eintr:
                        continue;
                    case LinuxVectoredFileIo.Einval or LinuxVectoredFileIo.Enosys or LinuxVectoredFileIo.Eopnotsupp:
                        refused = true;
                        return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)done);
                    default:
                        var status = write && errno == LinuxVectoredFileIo.Enospc ? SwapIoStatus.DeviceFull : SwapIoStatus.IoError;
                        return SwapIoResult.Failed(status, firstSlot + (ulong)done);
                }
            }

            if (moved == 0)
            {
                // A read at end of file (the file is shorter than the device), or a write that makes no progress.
                return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)done);
            }

            var total = partial + moved;
            done += (int)(total / PageSize);
            partial = (int)(total % PageSize);
        }

        return SwapIoResult.Success;
    }

    // unsafe: the address of a span, to test its alignment.
    private static unsafe bool IsPageAligned(ReadOnlySpan<byte> buffer)
    {
        fixed (byte* start = buffer)
        {
            return ((nint)start & (PageSize - 1)) == 0;
        }
    }

    /// <summary>A direct read into memory that is not page-aligned: through an aligned native buffer, copied out after.</summary>
    // unsafe: the bounce buffer is native memory, aligned as O_DIRECT wants and freed before returning.
    private unsafe SwapIoResult ReadAligned(ulong firstSlot, Span<byte> buffer)
    {
        var bounce = NativeMemory.AlignedAlloc((nuint)buffer.Length, PageSize);
        try
        {
            var aligned = new Span<byte>(bounce, buffer.Length);
            var result = ReadCore(firstSlot, aligned);
            aligned.CopyTo(buffer);
            return result;
        }
        finally
        {
            NativeMemory.AlignedFree(bounce);
        }
    }

    /// <summary>A direct write from memory that is not page-aligned: copied to an aligned native buffer first.</summary>
    // unsafe: as ReadAligned.
    private unsafe SwapIoResult WriteAligned(ulong firstSlot, ReadOnlySpan<byte> buffer)
    {
        var bounce = NativeMemory.AlignedAlloc((nuint)buffer.Length, PageSize);
        try
        {
            var aligned = new Span<byte>(bounce, buffer.Length);
            buffer.CopyTo(aligned);
            return WriteCore(firstSlot, aligned);
        }
        finally
        {
            NativeMemory.AlignedFree(bounce);
        }
    }

    private static bool IsDiskFull(IOException ex) => ex.HResult is Enospc or ErrorHandleDiskFull or ErrorDiskFull;

    private static string FullPath(string path)
    {
        try
        {
            return System.IO.Path.GetFullPath(path);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new SwapConfigurationException(
                SwapRule.PathNotCreatable, $"swap file path '{path}' cannot be created: {ex.Message}", "path", ex);
        }
    }

    private static SafeFileHandle Open(string path, ulong sizeBytes, bool temporary, bool directIo)
    {
        if (Directory.Exists(path))
        {
            throw new SwapConfigurationException(
                SwapRule.PathNotCreatable, $"swap file path '{path}' cannot be created: it is a folder", "path");
        }

        var existing = !temporary && File.Exists(path);
        long existingLength = 0;
        SafeFileHandle handle;
        try
        {
            if (existing)
            {
                handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                existingLength = RandomAccess.GetLength(handle);
                CheckReusable(path, handle, existingLength);
            }
            else
            {
                CheckFreeSpace(path, sizeBytes, 0);
                handle = File.OpenHandle(
                    path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
                    temporary ? FileOptions.DeleteOnClose : FileOptions.None, preallocationSize: (long)sizeBytes);
            }
        }
        catch (SwapConfigurationException)
        {
            throw;
        }
        catch (IOException ex) when (IsDiskFull(ex) || ex.Message.Contains("allocation size", StringComparison.Ordinal))
        {
            // .NET reports a failed preallocation (ENOSPC, EFBIG) as an IOException naming the allocation size.
            throw new SwapConfigurationException(
                SwapRule.InsufficientDiskSpace,
                string.Create(CultureInfo.InvariantCulture, $"swap file '{path}' of {sizeBytes} bytes does not fit on its disk: {ex.Message}"),
                "sizeBytes", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SwapConfigurationException(
                SwapRule.PathNotCreatable, $"swap file path '{path}' cannot be created: {ex.Message}", "path", ex);
        }

        try
        {
            if (existing && (ulong)existingLength < sizeBytes)
            {
                CheckFreeSpace(path, sizeBytes, (ulong)existingLength);
            }

            // Preallocation keeps the file's length at 0 on Linux; the length is what makes the slots readable.
            if (RandomAccess.GetLength(handle) != (long)sizeBytes)
            {
                RandomAccess.SetLength(handle, (long)sizeBytes);
            }

            Span<byte> header = stackalloc byte[PageSize];
            SwapHeader.Build(header, sizeBytes / Paging.PageSize);
            RandomAccess.Write(handle, header, 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            handle.Dispose();
            if (!existing)
            {
                File.Delete(path);
            }

            throw new SwapConfigurationException(
                ex is IOException io && IsDiskFull(io) ? SwapRule.InsufficientDiskSpace : SwapRule.PathNotCreatable,
                string.Create(CultureInfo.InvariantCulture, $"swap file '{path}' cannot be sized to {sizeBytes} bytes: {ex.Message}"),
                "path", ex);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        // The header went through the page cache; from here on every transfer bypasses it.
        if (directIo && !LinuxDirectIo.TryEnable(handle, out var reason))
        {
            handle.Dispose();
            if (!existing && !temporary)
            {
                File.Delete(path);
            }

            throw new SwapConfigurationException(
                SwapRule.DirectIoUnsupported, $"swap file '{path}' cannot use direct I/O: {reason}", "directIo");
        }

        return handle;
    }

    private static void CheckReusable(string path, SafeFileHandle handle, long length)
    {
        if (length == 0)
        {
            return;
        }

        Span<byte> header = stackalloc byte[PageSize];
        var n = length >= PageSize ? RandomAccess.Read(handle, header, 0) : 0;
        if (n != PageSize || !SwapHeader.HasMagic(header))
        {
            handle.Dispose();
            throw new SwapConfigurationException(
                SwapRule.ExistingFileNotSwap,
                string.Create(CultureInfo.InvariantCulture, $"'{path}' is an existing file of {length} bytes that is not a swap file (no SWAPSPACE2 header): refusing to overwrite it"),
                "path");
        }
    }

    private static void CheckFreeSpace(string path, ulong sizeBytes, ulong alreadyAllocated)
    {
        var folder = System.IO.Path.GetDirectoryName(path);
        if (string.IsNullOrEmpty(folder) || !Directory.Exists(folder))
        {
            return; // No folder to measure: the open reports why the path cannot be created.
        }

        long available;
        try
        {
            available = new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return; // The free space cannot be told; preallocation still catches a full disk.
        }

        var needed = sizeBytes - alreadyAllocated;
        if ((ulong)available < needed)
        {
            throw new SwapConfigurationException(
                SwapRule.InsufficientDiskSpace,
                string.Create(CultureInfo.InvariantCulture, $"swap file '{path}' needs {needed} more bytes but its disk has {available} bytes free"),
                "sizeBytes");
        }
    }
}
