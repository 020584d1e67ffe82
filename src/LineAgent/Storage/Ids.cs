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
        SecureRandom.Fill(random);
        for (var i = 10; i < 26; i++)
            chars[i] = Alphabet[random[i - 10] & 31];
        return prefix + "_" + new string(chars);
    }
}
