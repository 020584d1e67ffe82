using LineAgent.Batches;
using LineAgent.Leads;

namespace LineAgent.Tests.Batches;

/// <summary>Personalisation, one lead at a time: values, fallbacks, fields by header, and the first missing field named.</summary>
public sealed class TemplatesTests
{
    private static readonly LeadRow Ana = new()
    {
        Id = "lead_ana", FirstName = "Ana", LastName = "Ruiz", Phone = "+12025550101", Email = "ana@example.com", Company = "  ",
        Fields = """{"Plan":"gold","Renewal Date":"May 1","empty":""}""",
    };

    private static readonly LeadRow Bob = new() { Id = "lead_bob", FirstName = "Bob", Fields = "{}" };

    [TestCase("Hi {{firstName}}!", "Hi Ana!")]
    [TestCase("{{fullName}} <{{email}}> {{phone}}", "Ana Ruiz <ana@example.com> +12025550101")]
    [TestCase("Hi {{ firstName }}, {{firstName}} again", "Hi Ana, Ana again")]
    [TestCase("at {{company|your team}}", "at your team", Description = "a blank value takes the fallback")]
    [TestCase("at {{company|}}.", "at .", Description = "an empty fallback is a fallback")]
    [TestCase("{{fields.Plan}} / {{fields.plan}} / {{fields.renewal_date}} / {{fields.RenewalDate}}", "gold / gold / May 1 / May 1",
        Description = "a field by its header exactly, else ignoring case and punctuation")]
    [TestCase("{{fields.empty|none}} {{fields.absent|n/a}}", "none n/a")]
    [TestCase("no placeholders at all", "no placeholders at all")]
    [TestCase("{{ not a placeholder }} {x} {{}}", "{{ not a placeholder }} {x} {{}}")]
    [TestCase("Hi {{firstName|there}}, {{lastName|}}", "Hi Ana, Ruiz")]
    [TestCase("Hi {{ company | there }}, welcome", "Hi there, welcome", Description = "the spaces around a fallback are not kept, as around a name (probe)")]
    public void Render_ShouldFillEachPlaceholder(string template, string expected)
    {
        Assert.That(Templates.Render(template, Ana), Is.EqualTo(((string?)expected, (string?)null)));
    }

    [TestCase("Hi {{firstName}} at {{company}}", "company")]
    [TestCase("{{lastName}} {{company}}", "lastName", Description = "the first missing one is named")]
    [TestCase("{{fields.plan}}", "fields.plan")]
    [TestCase("{{unknownName}}", "unknownName", Description = "a name a lead cannot have is missing for every lead")]
    public void Render_ShouldNameTheFirstMissingField(string template, string missing)
    {
        Assert.That(Templates.Render(template, Bob), Is.EqualTo(((string?)null, (string?)missing)));
    }

    [Test]
    public void ACompiledTemplate_ShouldRenderEachLeadOnItsOwn()
    {
        var template = Templates.Compile("{{firstName}}{{lastName|x}} at {{fields.plan|base}}");
        Assert.That(template.Render(Ana), Is.EqualTo(((string?)"AnaRuiz at gold", (string?)null)));
        Assert.That(template.Render(Bob), Is.EqualTo(((string?)"Bobx at base", (string?)null)));
        Assert.That(template.Render(Ana), Is.EqualTo(((string?)"AnaRuiz at gold", (string?)null)), "nothing left over from the lead before");
    }

    [Test]
    public void TwoHeadersThatLookAlike_ShouldGiveTheExactOneElseTheFirst()
    {
        var lead = new LeadRow { Id = "lead_x", Fields = """{"renewal-date":"A","Renewal Date":"B"}""" };
        Assert.That(Templates.Render("{{fields.Renewal Date}}", lead).Text, Is.EqualTo("B"));
        Assert.That(Templates.Render("{{fields.renewaldate}}", lead).Text, Is.EqualTo("A"));
    }

    [Test]
    public void AMissingFieldBeforeAFallback_ShouldBeNamed()
    {
        Assert.That(Templates.Render("{{company}} {{lastName|x}}", Bob), Is.EqualTo(((string?)null, (string?)"company")));
    }

    [Test]
    public void APlaceholder_ShouldNeverSpanABrace()
    {
        Assert.That(Templates.Render("{{a.b{{firstName}}", Ana).Text, Is.EqualTo("{{a.bAna"));
        Assert.That(Templates.UnknownPlaceholders("{{fields.x{{fristName}}"), Is.EqualTo(new[] { "fristName" }));
    }

    [Test]
    public void AMegabyteOfUnclosedPlaceholders_ShouldBeReadInOnePass()
    {
        // A backtracking match scanned from every "{{a." to the end of the text looking for "}}": quadratic, hours for this.
        var text = string.Concat(Enumerable.Repeat("{{a.b", 200_000));
        Assert.That(Templates.UnknownPlaceholders(text), Is.Empty);
        Assert.That(Templates.Render(text, Ana).Text, Is.EqualTo(text));
    }

    [TestCase("Hi {{firstName", "'{{firstName'")]
    [TestCase("Hi {{firstName}", "'{{firstName}'")]
    [TestCase("Hi {{fields.}} there", "'{{fields.}} there'")]
    [TestCase("Hi {{|x}}", "'{{|x}}'")]
    [TestCase("Hi }}{{firstName}}", "'}}'")]
    [TestCase("Hi {{a.b{{firstName}}", "'{{a.b'")]
    public void ABraceThatOpensOrClosesNoPlaceholder_ShouldBeNamed(string template, string near)
    {
        Assert.That(Templates.Problem(template, "content"), Does.StartWith("content has a brace").And.Contain(near));
    }

    [Test]
    public void AKnownNameInSingleBraces_OrAnUnknownName_ShouldBeNamed_AndAGoodTemplateShouldPass()
    {
        Assert.That(Templates.Problem("Hi {firstName}!", "content"), Does.Contain("{firstName}").And.Contain("{{firstName}}"));
        Assert.That(Templates.Problem("Hi {{fristName}}", "followUps[0].content"), Does.Contain("{{fristName}}").And.Contain("followUps[0].content"));
        Assert.That(Templates.Problem("Hi {{firstName|there}}, {{fields.Plan}} {curly} {{ company }}", "content"), Is.Null);
        // Every kind of problem in one answer (probe: only the single braces were named).
        Assert.That(Templates.Problem("Hi {firstName} {{nope}}", "content"), Does.Contain("{{firstName}}").And.Contain("{{nope}}"));
        Assert.That(Templates.Problem("Hi {{firstName {{nope}}", "content"), Does.Contain("near '{{firstName").And.Contain("Unknown placeholder(s) {{nope}}"));
        Assert.That(Templates.Problem(string.Concat(Enumerable.Repeat("{{a.b", 200_000)), "content"), Does.StartWith("content has a brace"));
    }

    /// <summary>Only the six bare names were caught in single braces; the rest went out as typed (black-box probe).</summary>
    [TestCase("Your plan: {fields.plan}", "{{fields.plan}}")]
    [TestCase("Hi {firstName|there}", "{{firstName|there}}")]
    [TestCase("Hi {FirstName}", "{{firstName}}", Description = "any case; the fix named in the name's own case")]
    [TestCase("Hi { email }", "{{email}}")]
    public void APlaceholderInSingleBraces_ShouldBeNamed_WithItsTwoBraceForm(string template, string fix)
    {
        Assert.That(Templates.Problem(template, "content"), Does.Contain("placeholders take two braces").And.Contain(fix));
    }

    [Test]
    public void UnknownPlaceholders_ShouldNameEachOnce()
    {
        Assert.That(Templates.UnknownPlaceholders("{{fristName}} {{fields.x}} {{fristName}} {{company}} {{Phone}}"),
            Is.EqualTo(new[] { "fristName", "Phone" }));
    }
}
