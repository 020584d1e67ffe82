using System.Security.Cryptography;

namespace LineAgent.Storage;

/// <summary>
/// The OS's secure random bytes (/dev/urandom on macOS and Linux), read 4 KiB at a time. One read per id, as
/// Guid.NewGuid does on Linux, was a system call per message: 10,014 reads for a 10,000-lead bulk (strace), about
/// a quarter of its planning time (README Performance). RandomNumberGenerator would load OpenSSL on Linux (about
/// 4 MB resident); it is used only where /dev/urandom cannot be read. Bytes are handed out once, under a lock.
/// Ids and the generated API token take their bytes here (the token's RandomNumberGenerator loaded OpenSSL at every
/// first start: 3.7 MB of the bench's peak, README Performance).
/// </summary>
public static class SecureRandom
{
    private static readonly Lock Gate = new();
    private static readonly byte[] Pool = new byte[4096];
    private static int _next = Pool.Length;
    private static FileStream? _urandom;
    private static bool _noDevice;

    public static void Fill(Span<byte> into)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(into.Length, Pool.Length);
        lock (Gate)
        {
            if (_next + into.Length > Pool.Length)
                Refill();
            Pool.AsSpan(_next, into.Length).CopyTo(into);
            // Not left in memory once handed out.
            Pool.AsSpan(_next, into.Length).Clear();
            _next += into.Length;
        }
    }

    private static void Refill()
    {
        // Only where /dev/urandom is the kernel's device: on Windows the path would be a file anyone may create (C:\dev).
        if (!_noDevice && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()))
        {
            try
            {
                _urandom ??= new FileStream("/dev/urandom", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
                _urandom.ReadExactly(Pool);
                _next = 0;
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                _urandom?.Dispose();
                _urandom = null;
                _noDevice = true;
            }
        }
        RandomNumberGenerator.Fill(Pool);
        _next = 0;
    }
}
