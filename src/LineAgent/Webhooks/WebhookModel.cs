using System.Security.Cryptography;
using System.Text;
using LineAgent.Storage;

namespace LineAgent.Webhooks;

public static class WebhookEvents
{
    public const string Sent = "message.sent";
    public const string Failed = "message.failed";
    public const string Delivered = "message.delivered";
    public const string Read = "message.read";
    /// <summary>It was sent, and then the channel said it did not reach the recipient (Twilio `undelivered`, a Messages error after sending).</summary>
    public const string NotDelivered = "message.not_delivered";
    public const string Fallback = "message.fallback";
    public const string Reply = "message.reply";
    /// <summary>A pending message was cancelled (through the API, a reply under stopOnReply, or a stopped sequence).</summary>
    public const string Cancelled = "message.cancelled";
    /// <summary>
    /// A follow-up cancelled `sequence_stopped` is pending again: the step that stopped it was sent after all (chat.db
    /// confirmed it late, or its SMS fallback went). Without it a receiver kept the `message.cancelled` of a message that goes out.
    /// </summary>
    public const string Resumed = "message.resumed";

    public static readonly string[] All = [Sent, Failed, Delivered, Read, NotDelivered, Fallback, Reply, Cancelled, Resumed];
}

public sealed class WebhookRow
{
    /// <summary>The row's position (rowid), read only for paging.</summary>
    public long Seq { get; set; }
    public string Id { get; set; } = "";
    public string Url { get; set; } = "";
    public string Events { get; set; } = "[]";
    public string Secret { get; set; } = "";
    public long CreatedAt { get; set; }

    public string[] EventList() => System.Text.Json.JsonSerializer.Deserialize<string[]>(Events) ?? [];
    public bool Wants(string type) => EventList() is { Length: 0 } || EventList().Contains(type);
}

public sealed class DeliveryRow
{
    public long Id { get; set; }
    public string EventId { get; set; } = "";
    public string WebhookId { get; set; } = "";
    public string? MessageId { get; set; }
    public string Type { get; set; } = "";
    public string Payload { get; set; } = "";
    public long CreatedAt { get; set; }
    public string Status { get; set; } = "";
    public int Attempts { get; set; }
    public long NextAttemptAt { get; set; }
    public long? LastAttemptAt { get; set; }
    public int? LastStatus { get; set; }
    public string? LastError { get; set; }
    public long? DeliveredAt { get; set; }
    public string Url { get; set; } = "";
    public string Secret { get; set; } = "";
}

public sealed record WebhookRequest(string? Url, IReadOnlyList<string>? Events, string? Secret);

public sealed record WebhookPage(IReadOnlyList<WebhookDto> Items, string? NextCursor);

public sealed record DeliveryPage(IReadOnlyList<DeliveryDto> Items, string? NextCursor);

public sealed record WebhookDto(string Id, string Url, IReadOnlyList<string> Events, DateTimeOffset CreatedAt, string? Secret)
{
    public static WebhookDto From(WebhookRow r, bool withSecret) => new(r.Id, r.Url, r.EventList(), Time.FromMs(r.CreatedAt), withSecret ? r.Secret : null);
}

public sealed record DeliveryDto(string EventId, string Type, string? MessageId, string Status, int Attempts, DateTimeOffset CreatedAt,
    DateTimeOffset? LastAttemptAt, int? LastStatus, string? LastError, DateTimeOffset? NextAttemptAt, DateTimeOffset? DeliveredAt)
{
    public static DeliveryDto From(DeliveryRow d) => new(d.EventId, d.Type, d.MessageId, d.Status, d.Attempts, Time.FromMs(d.CreatedAt),
        Time.FromMs(d.LastAttemptAt), d.LastStatus, d.LastError, d.Status == "pending" ? Time.FromMs(d.NextAttemptAt) : null, Time.FromMs(d.DeliveredAt));
}

/// <summary>Standard Webhooks signatures: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), secret = whsec_ + base64(key).</summary>
public static class WebhookSignature
{
    public const string Prefix = "whsec_";

    public static string NewSecret() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    public static bool TryKey(string secret, out byte[] key)
    {
        key = [];
        if (!secret.StartsWith(Prefix, StringComparison.Ordinal))
            return false;
        try
        {
            key = Convert.FromBase64String(secret[Prefix.Length..]);
            return key.Length >= 16;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public static string Sign(string secret, string id, long timestamp, string body)
    {
        if (!TryKey(secret, out var key))
            throw new ArgumentException("not a whsec_ secret", nameof(secret));
        var mac = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}"));
        return "v1," + Convert.ToBase64String(mac);
    }
}
