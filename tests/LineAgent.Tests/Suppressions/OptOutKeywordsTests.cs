using LineAgent.Suppressions;

namespace LineAgent.Tests.Suppressions;

/// <summary>Which replies are an opt-out or an opt-in: one keyword, any case, with punctuation, symbols or emoji around it.</summary>
public sealed class OptOutKeywordsTests
{
    [TestCase("STOP", OptOutKeywords.Kind.OptOut)]
    [TestCase(" stop. ", OptOutKeywords.Kind.OptOut)]
    [TestCase("Stop!!", OptOutKeywords.Kind.OptOut)]
    [TestCase("STOP 🛑", OptOutKeywords.Kind.OptOut)]
    [TestCase("\"stop\"", OptOutKeywords.Kind.OptOut)]
    [TestCase("Unsubscribe", OptOutKeywords.Kind.OptOut)]
    [TestCase("revoke", OptOutKeywords.Kind.OptOut)]
    [TestCase("OptOut", OptOutKeywords.Kind.OptOut)]
    [TestCase("START", OptOutKeywords.Kind.OptIn)]
    [TestCase("unstop!", OptOutKeywords.Kind.OptIn)]
    [TestCase("ＳＴＯＰ", OptOutKeywords.Kind.OptOut)]
    [TestCase("Stop all", OptOutKeywords.Kind.OptOut)]
    [TestCase("STOP  ALL.", OptOutKeywords.Kind.OptOut)]
    [TestCase("opt-out", OptOutKeywords.Kind.OptOut)]
    [TestCase("Opt out!", OptOutKeywords.Kind.OptOut)]
    [TestCase("STOP\nALL", OptOutKeywords.Kind.OptOut)]
    [TestCase("Stop\tall", OptOutKeywords.Kind.OptOut)]
    [TestCase("opt\u2010out", OptOutKeywords.Kind.OptOut)]
    [TestCase("opt\u2013out", OptOutKeywords.Kind.OptOut)]
    [TestCase("stop\ud800", OptOutKeywords.Kind.OptOut)] // a lone surrogate cannot be normalised: read as it is, around the word
    [TestCase("stop please", OptOutKeywords.Kind.None)]
    [TestCase("stop all of it", OptOutKeywords.Kind.None)]
    [TestCase("all stop", OptOutKeywords.Kind.None)]
    [TestCase("stop-stop", OptOutKeywords.Kind.None)]
    [TestCase("don't stop", OptOutKeywords.Kind.None)]
    [TestCase("STOP STOP", OptOutKeywords.Kind.None)]
    [TestCase("stopped", OptOutKeywords.Kind.None)]
    [TestCase("🛑", OptOutKeywords.Kind.None)]
    [TestCase("", OptOutKeywords.Kind.None)]
    [TestCase(null, OptOutKeywords.Kind.None)]
    public void Classify_ShouldFindOneKeyword_WithWhatSurroundsIt(string? text, OptOutKeywords.Kind kind) =>
        Assert.That(OptOutKeywords.Classify(text), Is.EqualTo(kind));
}
