using Dapper;
using LineAgent.Scheduling;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Scheduling;

/// <summary>
/// When a line next has something to do: the earliest of MAX(due time, end of hold) over its pending rows, read in due
/// order and stopped early (Dispatcher.NextDueAtAsync), where one MIN over every pending row used to read them all.
/// </summary>
public sealed class NextDueTests : LifecycleTestBase
{
    private int _n;

    private async Task AddAsync(long dueAt, long? notBefore = null, string status = "scheduled", string line = "default")
    {
        await using var c = await _db.OpenAsync();
        await c.ExecuteAsync("""
            INSERT INTO messages (id, content, type, requested_type, status, line_id, recipient_phone, due_at, not_before, created_at, updated_at)
            VALUES (@Id, 'x', 'sms', 'sms', @Status, @Line, '+12025550100', @DueAt, @NotBefore, 1, 1)
            """, new { Id = $"msg_{++_n}", Status = status, Line = line, DueAt = dueAt, NotBefore = notBefore });
    }

    private async Task<long?> NextAsync(long horizon = long.MaxValue)
    {
        await using var c = await _db.OpenAsync();
        return await Dispatcher.NextDueAtAsync(c, "default", horizon, CancellationToken.None);
    }

    [Test]
    public async Task TheEarliestDueTimeOrEndOfHold_ShouldBeFound_AndOtherRowsIgnored()
    {
        Assert.That(await NextAsync(), Is.Null, "nothing pending");
        await AddAsync(10, status: "sent");
        await AddAsync(20, line: "other");
        await AddAsync(500);
        Assert.That(await NextAsync(), Is.EqualTo(500));

        await AddAsync(100, notBefore: 300); // due first, but held until 300
        Assert.That(await NextAsync(), Is.EqualTo(300));
        await AddAsync(200, status: "queued");
        Assert.That(await NextAsync(), Is.EqualTo(200), "a later due time that is not held comes first");
        await AddAsync(50, notBefore: 60);
        Assert.That(await NextAsync(), Is.EqualTo(60));

        Assert.That(await NextAsync(horizon: 60), Is.Null, "not before the horizon: the caller sleeps its longest");
        Assert.That(await NextAsync(horizon: 61), Is.EqualTo(60));
    }

    [Test]
    public async Task ManyPendingRowsAfterAFreeOne_ShouldGiveItsDueTime()
    {
        // 5,000 rows due after a free one: the answer is the first row; the rest must not decide it.
        await AddAsync(1_000);
        for (var i = 0; i < 5_000; i++)
            await AddAsync(2_000 + i, notBefore: i % 2 == 0 ? 1_500 : null);
        Assert.That(await NextAsync(), Is.EqualTo(1_000));
        await using var c = await _db.OpenAsync();
        await c.ExecuteAsync("UPDATE messages SET not_before = 999999 WHERE due_at = 1000");
        Assert.That(await NextAsync(), Is.EqualTo(2_000), "the next row: its hold ended before its due time");
    }
}
