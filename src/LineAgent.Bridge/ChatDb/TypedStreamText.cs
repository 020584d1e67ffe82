using System.Text;

namespace LineAgent.Bridge.ChatDb;

/// <summary>
/// The plain text of a chat.db `attributedBody` (an NSAttributedString in Apple's typedstream format).
/// Only the string is needed, so this reads the first NSString payload: after the bytes 01 2B comes its
/// length (one byte below 0x80, or 0x81 + uint16 LE, or 0x82 + uint32 LE) and that many UTF-8 bytes.
/// A length that runs past the data is cut at the next 86 84. Never throws on corrupt input.
/// </summary>
public static class TypedStreamText
{
    public static string? Decode(ReadOnlySpan<byte> blob)
    {
        var start = blob.IndexOf("\u0001+"u8);
        if (start < 0)
            return null;
        var p = start + 2;
        if (p >= blob.Length)
            return null;

        long length;
        switch (blob[p])
        {
            case 0x81 when p + 3 <= blob.Length:
                length = blob[p + 1] | (blob[p + 2] << 8);
                p += 3;
                break;
            case 0x82 when p + 5 <= blob.Length:
                length = (uint)(blob[p + 1] | (blob[p + 2] << 8) | (blob[p + 3] << 16) | (blob[p + 4] << 24));
                p += 5;
                break;
            case < 0x80:
                length = blob[p];
                p += 1;
                break;
            default:
                return null;
        }
        if (length == 0)
            return "";

        var available = blob.Length - p;
        var take = (int)Math.Min(length, available);
        var text = blob.Slice(p, take);
        if (length > available)
        {
            var end = text.IndexOf([(byte)0x86, (byte)0x84]);
            if (end >= 0)
                text = text[..end];
        }
        return Utf8.GetString(text);
    }

    public static string? Decode(byte[]? blob) => blob is null ? null : Decode(blob.AsSpan());

    /// <summary>Invalid UTF-8 becomes U+FFFD instead of an exception.</summary>
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
}
