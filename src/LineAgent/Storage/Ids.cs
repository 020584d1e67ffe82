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
        // 80 random bits from a version-4 GUID: the OS's secure random source on Linux and macOS, as RandomNumberGenerator,
        // but without loading OpenSSL, which RandomNumberGenerator does on Linux (about 4 MB, README Performance). Its byte 7
        // holds the version in its high nibble: that character takes the byte's low nibble and one unused bit of byte 0.
        Span<byte> random = stackalloc byte[16];
        Guid.NewGuid().TryWriteBytes(random);
        random[7] = (byte)((random[7] & 15) | ((random[0] >> 5 & 1) << 4));
        for (var i = 10; i < 26; i++)
            chars[i] = Alphabet[random[i - 10] & 31];
        return prefix + "_" + new string(chars);
    }
}
