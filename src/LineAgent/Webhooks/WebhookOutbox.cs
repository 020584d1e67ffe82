using System.Data;
using System.Text.Json;
using Dapper;
using LineAgent.Api;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Webhooks;

/// <summary>
/// Queues webhook events in the same transaction as the status change that causes them (the outbox
/// pattern): a change is never committed without its events, nor an event without its change.
/// </summary>
public sealed class WebhookOutbox(Db db, MessageStore store, WebhookSender sender, TimeProvider time) : IHostedService
{
    private volatile IReadOnlyList<WebhookRow> _subscriptions = [];

    public async Task StartAsync(CancellationToken ct)
    {
        await ReloadAsync(ct);
        store.ChangedInTransaction += OnChange;
    }

    public Task StopAsync(CancellationToken ct)
    {
        store.ChangedInTransaction -= OnChange;
        return Task.CompletedTask;
    }

    private readonly SemaphoreSlim _reload = new(1, 1);

    /// <summary>
    /// Deletes delivered and given-up events whose last attempt is before <paramref name="olderThan"/> (pending ones stay),
    /// a few thousand per transaction so that sends and requests are not held up behind one long delete. Review: nothing
    /// ever deleted them, each row holding a copy of its message.
    /// </summary>
    public async Task<int> PruneAsync(DateTimeOffset olderThan, CancellationToken ct)
    {
        var removed = 0;
        await using var c = await db.OpenAsync(ct);
        while (true)
        {
            var n = await c.ExecuteAsync(new CommandDefinition("""
                DELETE FROM webhook_deliveries WHERE id IN (
                    SELECT id FROM webhook_deliveries
                    WHERE status IN ('delivered', 'failed') AND COALESCE(last_attempt_at, created_at) < @OlderThan LIMIT 5000)
                """, new { OlderThan = Time.ToMs(olderThan) }, cancellationToken: ct));
            removed += n;
            if (n < 5000)
                return removed;
        }
    }

    /// <summary>Serialised, so the last reload always reads after every change that asked for one.</summary>
    public async Task ReloadAsync(CancellationToken ct)
    {
        await _reload.WaitAsync(ct);
        try
        {
            await using var c = await db.OpenAsync(ct);
            _subscriptions = (await c.QueryAsync<WebhookRow>(new CommandDefinition("SELECT * FROM webhooks ORDER BY created_at", cancellationToken: ct))).AsList();
        }
        finally
        {
            _reload.Release();
        }
    }

    /// <summary>
    /// The webhook event a message event stands for, if any. `message.fallback` is the fallback row's insert alone: a row
    /// held (paced) in the same millisecond it was created is still `queued` with created_at = updated_at, and was
    /// announced a second time when this was read from the row.
    /// </summary>
    public static string? EventType(MessageRow row, string status, string transition) => status switch
    {
        MessageStatus.Sent => WebhookEvents.Sent,
        // A row matched to an `unconfirmed` send (still failed until confirmed) is a note, not a second failure: it sent
        // `message.failed` again under a new id, which a receiver could not de-duplicate (black-box probe).
        MessageStatus.Failed when transition is not (Transitions.Match or Transitions.Note or Transitions.Track) => WebhookEvents.Failed,
        Messages.Delivery.Delivered => WebhookEvents.Delivered,
        Messages.Delivery.Read => WebhookEvents.Read,
        // Review: after `message.sent` nothing told a receiver that the message never arrived.
        Messages.Delivery.NotDelivered => WebhookEvents.NotDelivered,
        MessageStatus.Received => WebhookEvents.Reply,
        MessageStatus.Cancelled => WebhookEvents.Cancelled,
        MessageStatus.Queued when transition == Transitions.Fallback => WebhookEvents.Fallback,
        MessageStatus.Scheduled when transition == Transitions.SequenceResume => WebhookEvents.Resumed,
        _ => null,
    };

    private void OnChange(WriteScope s, MessageRow row, string status, string transition)
    {
        var subscriptions = _subscriptions;
        if (subscriptions.Count == 0 || EventType(row, status, transition) is not { } type)
            return;
        var now = time.GetUtcNow();
        var eventId = Ids.New("evt", now);
        var payload = JsonSerializer.Serialize(new
        {
            id = eventId, type, createdAt = now, data = MessageDto.From(row),
        }, AgentJson.Options);
        var queued = 0;
        foreach (var hook in subscriptions.Where(h => h.Wants(type)))
            // A subscription deleted a moment ago must not break the change itself: insert only if it still exists.
            queued += s.Connection.Execute("""
                INSERT INTO webhook_deliveries (event_id, webhook_id, message_id, type, payload, created_at, status, next_attempt_at)
                SELECT @EventId, @WebhookId, @MessageId, @Type, @Payload, @Now, 'pending', @Now
                WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = @WebhookId)
                """, new { EventId = eventId, WebhookId = hook.Id, MessageId = row.Id, Type = type, Payload = payload, Now = Time.ToMs(now) }, s.Transaction);
        // The sender wakes only when a commit queued something for it.
        if (queued > 0)
            s.AfterCommit(sender.Wake);
    }
}
