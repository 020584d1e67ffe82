using LineAgent.Bridge.ChatDb;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

public sealed class TypedStreamTextTests
{
    [TestCase("Edited.bin", "Edited")]
    [TestCase("CheckThisOut_doubled.bin", "Check this out!Check this out!")]
    public void Decode_ShouldReadEveryFixtureBlob(string file, string expected)
    {
        var blob = File.ReadAllBytes(Fixtures.Path($"chatdb/attributed-body/{file}"));
        Assert.That(TypedStreamText.Decode(blob), Is.EqualTo(expected));
    }

    [Test]
    public void Decode_ShouldReturnNoText_ForTheTruncatedHeader()
    {
        var blob = File.ReadAllBytes(Fixtures.Path("chatdb/attributed-body/TruncatedHeader.bin"));
        Assert.That(blob, Has.Length.EqualTo(13));
        Assert.That(TypedStreamText.Decode(blob), Is.Null);
    }

    [TestCase("")]
    [TestCase("a")]
    [TestCase("Hi Ana 👋 — ¿qué tal?")]
    [TestCase("attachment \uFFFC here")]
    [TestCase("\u200Fمرحبا\u200E ok")]
    public void Decode_ShouldRoundTrip_ShortTexts(string text) =>
        Assert.That(TypedStreamText.Decode(TypedStream.Encode(text)), Is.EqualTo(text));

    [TestCase(127)]
    [TestCase(128)]
    [TestCase(200)]
    [TestCase(65_535)]
    [TestCase(70_000)]
    public void Decode_ShouldReadLongLengths_With0x81And0x82Prefixes(int length)
    {
        var text = new string('x', length - 1) + "é"[..1];
        var blob = TypedStream.Encode(text);
        Assert.That(TypedStreamText.Decode(blob), Is.EqualTo(text));
    }

    [Test]
    public void Decode_ShouldCutAtTheNextObjectMarker_WhenTheLengthRunsPastTheData()
    {
        var full = TypedStream.Encode("Hello");
        var i = Array.IndexOf(full, (byte)0x2B) + 1;
        var blob = full.AsSpan(0, i + 1 + 5 + 12).ToArray(); // the text and 12 bytes of what follows it
        blob[i] = 0x7F; // claims 127 bytes: more than the data holds
        Assert.That(TypedStreamText.Decode(blob), Is.EqualTo("Hello"));

        // A length that fits is taken as is, even if 86 84 occurs inside (it is valid UTF-8 there: U+2184).
        Assert.That(TypedStreamText.Decode(TypedStream.Encode("aↄb")), Is.EqualTo("aↄb"));
    }

    [Test]
    public void Decode_ShouldNeverThrow_OnRandomOrCutBlobs()
    {
        var random = new Random(1234);
        var sample = TypedStream.Encode("The quick brown fox jumps over the lazy dog 🦊");
        for (var i = 0; i < 5000; i++)
        {
            var cut = sample.AsSpan(0, random.Next(sample.Length + 1)).ToArray();
            if (cut.Length > 0 && i % 2 == 0)
                cut[random.Next(cut.Length)] = (byte)random.Next(256);
            Assert.DoesNotThrow(() => TypedStreamText.Decode(cut));
        }
        var noise = new byte[256];
        for (var i = 0; i < 2000; i++)
        {
            random.NextBytes(noise);
            Assert.DoesNotThrow(() => TypedStreamText.Decode(noise));
        }
        Assert.That(TypedStreamText.Decode([]), Is.Null);
        Assert.That(TypedStreamText.Decode([0x01, 0x2B]), Is.Null);
        Assert.That(TypedStreamText.Decode([0x01, 0x2B, 0x00]), Is.EqualTo(""));
    }
}
