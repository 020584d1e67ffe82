using System.Net;
using System.Net.Http.Json;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>GET /api/suppressions pages like every list of the API: newest first, with an opaque, URL-safe cursor.</summary>
public sealed class SuppressionListTests : AgentTest
{
    private async Task Suppress(string address, string? reason = null) =>
        await (await Client.PostAsJsonAsync("/api/suppressions", new { address, reason })).ExpectAsync(HttpStatusCode.Created);

    [Test]
    public async Task AddingAnAddressAgain_ShouldAnswer200WithTheEntryAsItWas()
    {
        await Suppress("+12025550101", "first reason");
        Agent.Time.Advance(TimeSpan.FromMinutes(5));
        var again = await (await Client.PostAsJsonAsync("/api/suppressions", new { address = "(202) 555-0101", reason = "second" })).ExpectAsync(HttpStatusCode.OK);
        Assert.That(again.Str("reason"), Is.EqualTo("first reason"));
        Assert.That((await Client.GetJsonAsync("/api/suppressions"))["items"]!.AsArray(), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task List_ShouldPageNewestFirst_WithACursorThatNeedsNoEncoding()
    {
        // Two added in the same millisecond (then by address, descending), the rest a minute apart.
        await Suppress("+12025550101");
        await Suppress("+12025550109");
        foreach (var address in new[] { "zed@example.com", "+12025550105", "amy@example.com" })
        {
            Agent.Time.Advance(TimeSpan.FromMinutes(1));
            await Suppress(address);
        }

        var seen = new List<string>();
        var cursors = new List<string>();
        string? cursor = null;
        do
        {
            // The cursor goes into the URL exactly as given: it must mean the same without percent-encoding.
            var page = await Client.GetJsonAsync("/api/suppressions?limit=2" + (cursor is null ? "" : "&cursor=" + cursor));
            seen.AddRange(page["items"]!.AsArray().Select(s => s.Str("address")));
            cursor = page.StrOrNull("nextCursor");
            if (cursor is not null) cursors.Add(cursor);
        } while (cursor is not null && seen.Count < 20);

        Assert.That(seen, Is.EqualTo(new[] { "amy@example.com", "+12025550105", "zed@example.com", "+12025550109", "+12025550101" }));
        Assert.That(cursors, Has.Count.EqualTo(2));
        Assert.That(cursors, Has.All.Matches<string>(c => c.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_')),
            "a cursor is URL-safe base64, never a raw address with + or @");
    }

    [TestCase("+12025550101")]
    [TestCase("zzz")]
    [TestCase("YTp4OnkK")]
    [TestCase("YQ")]
    [TestCase("AA")]
    [TestCase("YTo")]
    public async Task List_ShouldRefuseACursorItDidNotGiveOut(string cursor)
    {
        await Suppress("+12025550101");
        var problem = await (await Client.GetAsync("/api/suppressions?cursor=" + Uri.EscapeDataString(cursor))).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That((problem.ProblemFields(), problem.ProblemCodes()), Is.EqualTo((new[] { "cursor" }, new[] { "invalid_cursor" })));
        var both = await (await Client.GetAsync("/api/suppressions?limit=0&cursor=" + Uri.EscapeDataString(cursor))).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(both.ProblemFields(), Is.EqualTo(new[] { "limit", "cursor" }), "both named, as on the other lists (probe)");
    }

    [Test]
    public async Task Add_ShouldRefuseAReasonWithNul_AndStoreNothing()
    {
        var problem = await (await Client.PostAsJsonAsync("/api/suppressions", new { address = "+12025550101", reason = "asked\0" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That((problem.ProblemFields(), problem.ProblemCodes()), Is.EqualTo((new[] { "reason" }, new[] { "invalid_reason" })));
        Assert.That((await Client.GetJsonAsync("/api/suppressions"))["items"]!.AsArray(), Is.Empty);
    }
}
