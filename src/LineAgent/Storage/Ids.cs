using System.Security.Cryptography;

namespace LineAgent.Storage;

/// <summary>Prefixed ULIDs ("msg_01J..."): sortable by creation time, unguessable, URL-safe.</summary>
public static class Ids
{
    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    public static string New(string prefix, DateTimeOffset now)
    {
        Span<char> chars = stackalloc char[26];
        var ms = (ulong)now.ToUnixTimeMilliseconds();
        for (var i = 9; i >= 0; i--)
        {
            chars[i] = Alphabet[(int)(ms & 31)];
            ms >>= 5;
        }
        Span<byte> random = stackalloc byte[16];
        RandomPool.Take(random);
        for (var i = 10; i < 26; i++)
            chars[i] = Alphabet[random[i - 10] & 31];
        return prefix + "_" + new string(chars);
    }

    /// <summary>
    /// The OS's secure random bytes (/dev/urandom on macOS and Linux), read 4 KiB at a time. One read per id, as
    /// Guid.NewGuid does on Linux, was a system call per message: 10,014 reads for a 10,000-lead bulk (strace), about
    /// a quarter of its planning time (README Performance). RandomNumberGenerator would load OpenSSL on Linux (about
    /// 4 MB resident); it is used only where /dev/urandom cannot be read. Bytes are handed out once, under a lock.
    /// </summary>
    private static class RandomPool
    {
        private static readonly Lock Gate = new();
        private static readonly byte[] Pool = new byte[4096];
        private static int _next = Pool.Length;
        private static FileStream? _urandom;
        private static bool _noDevice;

        public static void Take(Span<byte> into)
        {
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
            if (!_noDevice)
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
}
