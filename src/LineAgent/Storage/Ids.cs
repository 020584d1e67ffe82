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
    /// The id of the event <paramref name="type"/> of message <paramref name="messageId"/> ("evt_" and 26 characters):
    /// the same each time that event is recorded. Each of a message's webhook events happens once in its life (a retry or
    /// a fallback is a message of its own), so it is unique, and an event recorded a second time, as when `lineagent
    /// restore` marks sent again a message the replaced database had sent, keeps the webhook-id the receiver already
    /// saw and can be told apart as a duplicate (Standard Webhooks: the id is the idempotency key). Its first 10
    /// characters are the message's time (its ULID's), so the ids still sort by time; the rest is a hash, not random.
    /// </summary>
    public static string ForEvent(string messageId, string type, DateTimeOffset now)
    {
        Span<char> chars = stackalloc char[26];
        var ulid = messageId.AsSpan(messageId.IndexOf('_') + 1);
        if (ulid.Length == 26)
            ulid[..10].CopyTo(chars);
        else
        {
            var ms = (ulong)now.ToUnixTimeMilliseconds();
            for (var i = 9; i >= 0; i--)
            {
                chars[i] = Alphabet[(int)(ms & 31)];
                ms >>= 5;
            }
        }
        // Two 64-bit FNV-1a hashes of "id\ntype" (different offsets): 80 of their bits, 5 per character.
        ulong a = 14695981039346656037UL, b = 0x9E3779B97F4A7C15UL;
        foreach (var part in new[] { messageId, "\n", type })
            foreach (var ch in part)
            {
                a = (a ^ ch) * 1099511628211UL;
                b = (b ^ ch) * 1099511628211UL;
            }
        // FNV's low bits depend only on the inputs' low bits: a finalizer (MurmurHash3's) spreads every bit first.
        a = Mix(a);
        b = Mix(b);
        for (var i = 10; i < 26; i++)
        {
            ref var h = ref i < 18 ? ref a : ref b;
            chars[i] = Alphabet[(int)(h & 31)];
            h >>= 5;
        }
        return "evt_" + new string(chars);

        static ulong Mix(ulong h)
        {
            h = (h ^ (h >> 33)) * 0xFF51AFD7ED558CCDUL;
            h = (h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53UL;
            return h ^ (h >> 33);
        }
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
