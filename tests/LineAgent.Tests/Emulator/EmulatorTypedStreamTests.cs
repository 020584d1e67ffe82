using System.Text;
using LineAgent.Bridge.ChatDb;
using LineAgent.Tests.Support;
using Emu = MessagesEmulation;

namespace LineAgent.Tests.Emulator;

/// <summary>The emulator's attributedBody encoder against Apple's samples and the agent's own decoder.</summary>
public sealed class EmulatorTypedStreamTests
{
    private static byte[] Sample(string name) => File.ReadAllBytes(Fixtures.Path($"chatdb/attributed-body/{name}"));

    [Test]
    public void Encode_ShouldReproduceEditedBin_ByteForByte() =>
        Assert.That(Emu.TypedStream.Encode("Edited"), Is.EqualTo(Sample("Edited.bin")));

    [TestCase("Edited.bin", "Edited")]
    [TestCase("CheckThisOut_doubled.bin", "Check this out!Check this out!")]
    [TestCase("TruncatedHeader.bin", null)]
    public void Decode_ShouldReadApplesSamples(string file, string? text)
    {
        Assert.That(Emu.TypedStream.Decode(Sample(file)), Is.EqualTo(text));
        Assert.That(TypedStreamText.Decode(Sample(file)), Is.EqualTo(text), "the agent agrees");
    }

    private static readonly string[] Samples =
    [
        "", "Edited", new('a', 200), new('é', 35000), new('x', 70000), new('y', 40000), new('z', 127), new('z', 128),
        new('w', 32767), new('w', 32768), "😀👍🏽👨‍👩‍👧", "\ufffc", "see \ufffc attached", "\u200fשלום\u200e abc \u202eevil",
        "line1\nline2\r\n\ttab \"q\" 'q' \\ \u2028", "aↄb",
    ];

    [TestCaseSource(nameof(Samples))]
    public void EncodedText_ShouldRoundTrip_ThroughTheEmulatorAndTheAgentsDecoder(string text)
    {
        var blob = Emu.TypedStream.Encode(text);
        Assert.That(Emu.TypedStream.Decode(blob), Is.EqualTo(text));
        Assert.That(TypedStreamText.Decode(blob), Is.EqualTo(text));
        Assert.That(Emu.TypedStream.Encode(Encoding.UTF8.GetBytes(text)), Is.EqualTo(blob), "bytes and string encode alike");
    }

    [Test]
    public void LengthFields_ShouldUseOneByte_0x81_Or0x82_AndTheRangeTheUtf16Length()
    {
        static byte[] LengthField(string t)
        {
            var blob = Emu.TypedStream.Encode(t);
            var i = blob.AsSpan().IndexOf((ReadOnlySpan<byte>)[0x01, 0x2B]) + 2;
            return blob[i..(i + (blob[i] < 0x80 ? 1 : blob[i] == 0x81 ? 3 : 5))];
        }
        Assert.That(LengthField("Edited"), Is.EqualTo(new byte[] { 0x06 }));
        Assert.That(LengthField(new string('a', 200)), Is.EqualTo(new byte[] { 0x81, 0xC8, 0x00 }));
        Assert.That(LengthField(new string('x', 70000)), Is.EqualTo((byte[])[0x82, .. BitConverter.GetBytes(70000)]));
        Assert.That(Contains(Emu.TypedStream.Encode(""), [0x01, 0x2B, 0x00]), Is.True, "empty text: 01 2B 00");

        byte[] Range(params byte[] length) => [0x86, 0x84, 0x02, (byte)'i', (byte)'I', 0x01, .. length, 0x92];
        Assert.That(Contains(Emu.TypedStream.Encode("😀"), Range(0x02)), Is.True, "an emoji is 2 UTF-16 units");
        Assert.That(Contains(Emu.TypedStream.Encode(new string('a', 200)), Range(0x81, 0xC8, 0x00)), Is.True);
        Assert.That(Contains(Emu.TypedStream.Encode(new string('x', 70000)), Range([0x82, .. BitConverter.GetBytes(70000)])), Is.True);
        Assert.That(Contains(Emu.TypedStream.Encode(new string('é', 35000)), Range([0x82, .. BitConverter.GetBytes(35000)])), Is.True,
            "70,000 UTF-8 bytes, 35,000 UTF-16 units");
    }

    [Test]
    public void Decode_ShouldNeverThrow_OnMalformedBlobs()
    {
        Assert.That(Emu.TypedStream.Decode([0x04, 0x0B, .. "streamtyped"u8, 0x01, 0x2B, 0x7F, .. "abc"u8, 0x86, 0x84, 0x02, .. "iI"u8]), Is.EqualTo("abc"),
            "a length past the data is cut at 86 84");
        Assert.That(Emu.TypedStream.Decode([0x01, 0x2B, 0x81, 0xFF, 0x00, .. "abc"u8]), Is.EqualTo("abc"), "no 86 84: the rest");
        Assert.That(Emu.TypedStream.Decode([0x04, 0x0B, .. "streamtyped"u8, 0x81, 0xE8, 0x03]), Is.Null, "no 01 2B");
        Assert.That(Emu.TypedStream.Decode(Array.Empty<byte>()), Is.Null);
        Assert.That(Emu.TypedStream.Decode((byte[]?)null), Is.Null);
        Assert.That(Emu.TypedStream.Decode([0x01, 0x2B, 0x00, 0x86, 0x84]), Is.EqualTo(""));
        Assert.That(Emu.TypedStream.Decode([0x01, 0x2B, 0x81, 0x05]), Is.Null, "truncated 0x81 length");
        Assert.That(Emu.TypedStream.Decode([0x01, 0x2B]), Is.Null);
        Assert.That(Emu.TypedStream.Decode([0x01, 0x2B, 0x02, 0xFF, 0xFE, 0x86, 0x84]), Is.EqualTo("\ufffd\ufffd"), "invalid UTF-8: replacement characters");
    }

    [Test]
    public void DecodeCommand_ShouldPrintTheText_OrExit1()
    {
        using var dir = new TempDir();
        var emu = new MessagesEmulator(dir.File("m"));
        Assert.That(emu.Run("decode", Fixtures.Path("chatdb/attributed-body/CheckThisOut_doubled.bin")), Is.EqualTo("Check this out!Check this out!\n"));
        var failed = Assert.Throws<InvalidOperationException>(() => emu.Run("decode", Fixtures.Path("chatdb/attributed-body/TruncatedHeader.bin")))!;
        Assert.That(failed.Message, Does.Contain("(1)").And.Contain("no text"));
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
