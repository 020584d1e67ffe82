using System.Data;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dapper;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Messages;

public sealed class IdempotencyRecord
{
    public string Key { get; set; } = "";
    public string RequestHash { get; set; } = "";
    public string? MessageId { get; set; }
    public int? ResponseStatus { get; set; }
    public string? ResponseBody { get; set; }
    public long CreatedAt { get; set; }
}

/// <summary>
/// Idempotency keys: stored in the transaction that stores the message or batch, with the answer kept for replays.
/// The HTTP side (header, replay, conflict) is <see cref="Api.IdempotencyFilter"/>.
/// </summary>
public sealed class IdempotencyStore(Db db, ILogger<IdempotencyStore> log)
{
    public const string Header = "Idempotency-Key";
    public const int MaxKeyLength = 255;

    /// <summary>Within the transaction of what it answers for, with the answer already known (bulk).</summary>
    public static void InsertAnswered(IDbConnection c, IDbTransaction tx, string key, string hash, int status, string body, long now) =>
        c.Execute(
            "INSERT INTO idempotency_keys (key, request_hash, response_status, response_body, created_at) VALUES (@Key, @Hash, @Status, @Body, @Now)",
            new { Key = key, Hash = hash, Status = status, Body = body, Now = now }, tx);

    public static string Hash(string route, object body) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(route + "\n" + JsonSerializer.Serialize(body))));

    public async Task<IdempotencyRecord?> FindAsync(string key, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<IdempotencyRecord>(new CommandDefinition(
            "SELECT key, request_hash, message_id, response_status, response_body, created_at FROM idempotency_keys WHERE key = @Key",
            new { Key = key }, cancellationToken: ct));
    }

    /// <summary>Within the message's transaction. Throws <see cref="SqliteException"/> (constraint) if the key was taken meanwhile.</summary>
    public static void Insert(IDbConnection c, IDbTransaction tx, string key, string hash, string? messageId, long now) =>
        c.Execute(
            "INSERT INTO idempotency_keys (key, request_hash, message_id, created_at) VALUES (@Key, @Hash, @MessageId, @Now)",
            new { Key = key, Hash = hash, MessageId = messageId, Now = now }, tx);

    public async Task SaveResponseAsync(string key, int status, string body, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(
            "UPDATE idempotency_keys SET response_status = @Status, response_body = @Body WHERE key = @Key AND response_status IS NULL",
            new { Key = key, Status = status, Body = body }, cancellationToken: ct));
    }

    /// <summary>
    /// Keeps the answer of a request whose message is already stored. A storage fault here must not turn that answer
    /// into an error (the client would send again): it is logged, and a replay answers from the message's state.
    /// </summary>
    public async Task TrySaveResponseAsync(string key, int status, string body)
    {
        try
        {
            await SaveResponseAsync(key, status, body, CancellationToken.None);
        }
        catch (Exception e) when (Storage.StorageHealth.FaultOf(e) is not null || e is SqliteException)
        {
            log.LogWarning(e, "The answer for Idempotency-Key {Key} was not kept; a replay answers from the message's state", key);
        }
    }

    public async Task<int> PruneAsync(long olderThan, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteAsync(new CommandDefinition(
            "DELETE FROM idempotency_keys WHERE created_at < @OlderThan", new { OlderThan = olderThan }, cancellationToken: ct));
    }

    /// <summary>SQLITE_CONSTRAINT_PRIMARYKEY or _UNIQUE: the key was stored by a concurrent request.</summary>
    public static bool IsUniqueViolation(SqliteException e) => e.SqliteExtendedErrorCode is 1555 or 2067;
}
