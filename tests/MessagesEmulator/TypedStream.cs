using System.Buffers.Binary;

namespace MessagesEmulation;

/// <summary>
/// message.attributedBody: an NSAttributedString in Apple's typedstream format.
/// <see cref="Encode(byte[])"/> reuses fixtures/chatdb/attributed-body/Edited.bin around the text:
/// the prefix up to `01 2B`, the UTF-8 length, the bytes, then the sample's suffix with the `iI` range
/// length set to the text's UTF-16 length. Encode("Edited") equals Edited.bin byte for byte.
/// </summary>
public static class TypedStream
{
    private static readonly byte[] Prefix = Convert.FromHexString(
        "040b73747265616d747970656481e803840140848484124e5341747472696275746564537472696e6700" +
        "8484084e534f626a656374008592848484084e53537472696e67019484012b");

    /// <summary>The attribute run `86 84 02 'i' 'I' 01` (range location 1); the range length follows.</summary>
    private static readonly byte[] SuffixHead = Convert.FromHexString("868402694901");

    private static readonly byte[] SuffixTail = Convert.FromHexString(
        "928484840c4e5344696374696f6e61727900948401690292849696265f5f6b494d426173655772697469" +
        "6e67446972656374696f6e4174747269627574654e616d658692848484084e534e756d62657200848407" +
        "4e5356616c7565009484012a848401719dff86928496961d5f5f6b494d4d657373616765506172744174" +
        "747269627574654e616d658692849b9c9d9d00868686");

    public static byte[] Encode(string text) => Encode(Util.Utf8.GetBytes(text));

    /// <summary>The blob for these UTF-8 bytes (kept as they are, even if they are not valid UTF-8).</summary>
    public static byte[] Encode(byte[] utf8)
    {
        var utf16Length = Util.Utf8.GetCharCount(utf8);
        var output = new MemoryStream(Prefix.Length + utf8.Length + SuffixHead.Length + SuffixTail.Length + 10);
        output.Write(Prefix);
        WriteInt(output, utf8.Length);
        output.Write(utf8);
        output.Write(SuffixHead);
        WriteInt(output, utf16Length);
        output.Write(SuffixTail);
        return output.ToArray();
    }

    /// <summary>
    /// typedstream integer: 1 byte (&lt; 0x80), 0x81 + int16 LE (&lt; 0x8000: typedstream integers are signed),
    /// else 0x82 + int32 LE.
    /// </summary>
    private static void WriteInt(Stream output, int n)
    {
        Span<byte> b = stackalloc byte[5];
        if (n < 0x80)
        {
            output.WriteByte((byte)n);
        }
        else if (n < 0x8000)
        {
            b[0] = 0x81;
            BinaryPrimitives.WriteInt16LittleEndian(b[1..], (short)n);
            output.Write(b[..3]);
        }
        else
        {
            b[0] = 0x82;
            BinaryPrimitives.WriteInt32LittleEndian(b[1..], n);
            output.Write(b);
        }
    }

    /// <summary>
    /// Plain text of an attributedBody, or null when it has none. Finds the first `01 2B`, reads the length
    /// (1 byte &lt; 0x80, 0x81 + uint16 LE, 0x82 + uint32 LE) and decodes that many bytes as UTF-8; a length
    /// running past the data is cut at the next `86 84`. Never throws.
    /// </summary>
    public static string? Decode(ReadOnlySpan<byte> blob)
    {
        var start = blob.IndexOf((ReadOnlySpan<byte>)[0x01, 0x2B]);
        if (start < 0)
            return null;
        var pos = start + 2;
        if (pos >= blob.Length)
            return null;
        long length;
        var tag = blob[pos];
        if (tag < 0x80)
        {
            length = tag;
            pos += 1;
        }
        else if (tag is 0x81 or 0x82)
        {
            var width = tag == 0x81 ? 2 : 4;
            if (pos + 1 + width > blob.Length)
                return null;
            length = width == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(blob[(pos + 1)..]) : BinaryPrimitives.ReadUInt32LittleEndian(blob[(pos + 1)..]);
            pos += 1 + width;
        }
        else
        {
            return null;
        }
        var text = blob[pos..];
        if (length <= text.Length)
        {
            text = text[..(int)length];
        }
        else
        {
            var cut = text.IndexOf((ReadOnlySpan<byte>)[0x86, 0x84]);
            if (cut >= 0)
                text = text[..cut];
        }
        return Util.Utf8.GetString(text);
    }

    public static string? Decode(byte[]? blob) => blob is null || blob.Length == 0 ? null : Decode(blob.AsSpan());
}
