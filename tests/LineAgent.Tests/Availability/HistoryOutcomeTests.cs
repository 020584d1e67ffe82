using Dapper;
using LineAgent.Availability;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Availability;

/// <summary>
/// What this agent's own history says about an address: its newest iMessage outcome (delivered or read: blue; error 22:
/// gray), for one address (NewestOutcome) and for a bulk send's many (OutcomesOfMany), read through the outcome
/// indexes of migration 012. Rows that tell nothing (scheduled, sent but unconfirmed, SMS, inbound) are not outcomes.
/// </summary>
public sealed class HistoryOutcomeTests : LifecycleTestBase
{
    private int _n;

    private async Task AddAsync(string? phone, string? email, long updatedAt, string status = "sent", string delivery = "unknown",
        string? errorCode = null, string type = "imessage", string direction = "outbound")
    {
        await using var c = await _db.OpenAsync();
        await c.ExecuteAsync("""
            INSERT INTO messages (id, direction, content, type, requested_type, status, delivery, line_id, recipient_phone, recipient_email,
                                  error_code, due_at, created_at, updated_at)
            VALUES (@Id, @Direction, 'x', @Type, @Type, @Status, @Delivery, 'default', @Phone, @Email, @ErrorCode, 1, 1, @UpdatedAt)
            """, new { Id = $"msg_{++_n}", Direction = direction, Type = type, Status = status, Delivery = delivery, Phone = phone, Email = email,
                ErrorCode = errorCode, UpdatedAt = updatedAt });
    }

    private async Task<Dictionary<string, long>> ManyAsync(params string[] addresses)
    {
        await using var c = await _db.OpenAsync();
        return (await c.QueryAsync<(string Address, long Outcome)>(AvailabilityService.OutcomesOfMany,
            new { A = System.Text.Json.JsonSerializer.Serialize(addresses) })).ToDictionary(r => r.Address, r => r.Outcome & 1);
    }

    private async Task<(string? Delivery, string? ErrorCode, long UpdatedAt)> NewestAsync(string address)
    {
        await using var c = await _db.OpenAsync();
        return await c.QuerySingleOrDefaultAsync<(string? Delivery, string? ErrorCode, long UpdatedAt)>(
            "SELECT Delivery, ErrorCode, UpdatedAt FROM (" + AvailabilityService.NewestOutcome + ")", new { Address = address });
    }

    [Test]
    public async Task TheNewestOutcome_ShouldDecide_AndRowsThatTellNothingShouldNot()
    {
        const string phone = "+12025550100";
        await AddAsync(phone, null, 10, delivery: "delivered");
        await AddAsync(phone, null, 20, status: "failed", errorCode: "imessage_unavailable");
        // Newer, but none is an iMessage outcome: unconfirmed, scheduled, an SMS delivered, an inbound iMessage, another error.
        await AddAsync(phone, null, 30);
        await AddAsync(phone, null, 31, status: "scheduled");
        await AddAsync(phone, null, 32, type: "sms", delivery: "delivered");
        await AddAsync(phone, null, 33, status: "received", direction: "inbound");
        await AddAsync(phone, null, 34, status: "failed", errorCode: "send_failed");

        Assert.That(await ManyAsync(phone), Is.EqualTo(new Dictionary<string, long> { [phone] = 1 }));
        Assert.That(await NewestAsync(phone), Is.EqualTo(((string?)"unknown", (string?)"imessage_unavailable", 20L)));

        await AddAsync(phone, null, 40, delivery: "read");
        Assert.That(await ManyAsync(phone), Is.EqualTo(new Dictionary<string, long> { [phone] = 0 }));
        Assert.That(await NewestAsync(phone), Is.EqualTo(((string?)"read", (string?)null, 40L)));
    }

    [Test]
    public async Task AnEmail_ShouldBeDecidedOnlyByIMessagesThatWentToIt()
    {
        // A lead with a phone and an email gets its iMessage at the phone: that row says nothing about the email.
        await AddAsync("+12025550101", "both@example.com", 10, status: "failed", errorCode: "imessage_unavailable");
        await AddAsync(null, "only@example.com", 10, delivery: "delivered");
        await AddAsync(null, "gray@example.com", 10, status: "failed", errorCode: "imessage_unavailable");

        var known = await ManyAsync("both@example.com", "only@example.com", "gray@example.com", "+12025550101", "+12025550199");
        Assert.That(known, Is.EqualTo(new Dictionary<string, long> { ["only@example.com"] = 0, ["gray@example.com"] = 1, ["+12025550101"] = 1 }));
        Assert.That((await NewestAsync("both@example.com")).UpdatedAt, Is.EqualTo(0), "no outcome");
        Assert.That(await NewestAsync("only@example.com"), Is.EqualTo(((string?)"delivered", (string?)null, 10L)));
    }

    [Test]
    public async Task ManyAddresses_ShouldEachGetTheirOwnNewestOutcome()
    {
        var phones = Enumerable.Range(0, 300).Select(i => $"+1202555{i:D4}").ToArray();
        for (var i = 0; i < phones.Length; i++)
        {
            await AddAsync(phones[i], null, 10, delivery: "delivered");
            if (i % 3 == 0)
                await AddAsync(phones[i], null, 20, status: "failed", errorCode: "imessage_unavailable");
        }
        var known = await ManyAsync([.. phones, "+12025559999"]);
        Assert.That(known, Has.Count.EqualTo(300));
        Assert.That(known.Count(k => k.Value == 1), Is.EqualTo(100));
        Assert.That(phones.Where((_, i) => i % 3 == 0).All(p => known[p] == 1), Is.True);
    }
}
