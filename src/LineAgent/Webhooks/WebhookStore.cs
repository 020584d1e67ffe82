using Dapper;
using LineAgent.Storage;

namespace LineAgent.Webhooks;

/// <summary>Subscriptions and their delivery log, as the API reads and changes them.</summary>
public sealed class WebhookStore(Db db)
{
    public async Task AddAsync(WebhookRow row, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(
            "INSERT INTO webhooks (id, url, events, secret, created_at) VALUES (@Id, @Url, @Events, @Secret, @CreatedAt)", row, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<WebhookRow>> ListAsync(CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<WebhookRow>(new CommandDefinition("SELECT * FROM webhooks ORDER BY created_at", cancellationToken: ct))).AsList();
    }

    /// <summary>Newest first, before the position <paramref name="before"/> (a rowid) when given.</summary>
    public async Task<IReadOnlyList<WebhookRow>> PageAsync(long? before, int limit, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<WebhookRow>(new CommandDefinition(
            "SELECT rowid AS Seq, * FROM webhooks WHERE @Before IS NULL OR rowid < @Before ORDER BY rowid DESC LIMIT @Limit",
            new { Before = before, Limit = limit }, cancellationToken: ct))).AsList();
    }

    public async Task<WebhookRow?> GetAsync(string id, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<WebhookRow>(new CommandDefinition("SELECT * FROM webhooks WHERE id = @Id", new { Id = id }, cancellationToken: ct));
    }

    /// <summary>False when there was no such subscription.</summary>
    public async Task<bool> DeleteAsync(string id, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteAsync(new CommandDefinition("DELETE FROM webhooks WHERE id = @Id", new { Id = id }, cancellationToken: ct)) > 0;
    }

    /// <summary>Newest first; null when there is no such subscription.</summary>
    public async Task<IReadOnlyList<DeliveryRow>?> DeliveriesAsync(string id, long? before, int limit, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        if (await c.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM webhooks WHERE id = @Id", new { Id = id }, cancellationToken: ct)) == 0)
            return null;
        return (await c.QueryAsync<DeliveryRow>(new CommandDefinition(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = @Id AND (@Before IS NULL OR id < @Before) ORDER BY id DESC LIMIT @Limit",
            new { Id = id, Before = before, Limit = limit }, cancellationToken: ct))).AsList();
    }
}
