using Dapper;
using LineAgent.Delivery;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Suppressions;
using Microsoft.Extensions.Options;
using Twilio.Exceptions;
using Twilio.Rest.Api.V2010.Account;
using DeliveryState = LineAgent.Messages.Delivery;

namespace LineAgent.Channels.Twilio;

/// <summary>
/// Follows Twilio messages until their status is final: `sent`/`delivered` → sent (and delivered),
/// `undelivered`/`failed` → failed with Twilio's error code (or not_delivered when already sent).
/// </summary>
public sealed class TwilioStatusPoller(
    TwilioSmsChannel channel,
    MessageStore store,
    MessageNotifier notifier,
    IOptions<TwilioOptions> options,
    TimeProvider time,
    ILogger<TwilioStatusPoller> log) : BackgroundService
{
    private const string Open = """
        SELECT * FROM messages
        WHERE channel = 'twilio' AND channel_ref IS NOT NULL AND (status = 'sending' OR (track_until IS NOT NULL AND track_until > @Now))
        ORDER BY seq
        """;

    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Dictionary<string, DateTimeOffset> _lastPolled = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (channel.Client is null)
            return;
        notifier.Changed += OnChanged;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await PollOnceAsync(stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    log.LogError(e, "Twilio status poll failed");
                }
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                await Task.WhenAny(_wake.WaitAsync(cts.Token), Task.Delay(options.Value.StatusPollInterval, time, cts.Token));
                cts.Cancel();
            }
        }
        finally
        {
            notifier.Changed -= OnChanged;
        }
    }

    private void OnChanged(MessageRow row)
    {
        if (row.Channel == TwilioSmsChannel.ChannelName && row.Status == MessageStatus.Sending && row.ChannelRef is not null && _wake.CurrentCount == 0)
        {
            try { _wake.Release(); } catch (SemaphoreFullException) { }
        }
    }

    internal async Task PollOnceAsync(CancellationToken ct)
    {
        List<MessageRow> open;
        await using (var c = await store.Db.OpenAsync(ct))
            open = (await c.QueryAsync<MessageRow>(new CommandDefinition(Open, new { Now = NowMs }, cancellationToken: ct))).AsList();
        var now = time.GetUtcNow();
        foreach (var key in _lastPolled.Keys.Where(k => open.All(m => m.Id != k)).ToList())
            _lastPolled.Remove(key);
        foreach (var m in open)
        {
            // Messages still `sending` are looked up every pass; sent ones waiting for a delivery report less
            // often as they age (a quarter of their age, at most hourly), so carriers that never report cost little.
            if (m.Status == MessageStatus.Sent && m.SentAt is { } sentAt && _lastPolled.TryGetValue(m.Id, out var last))
            {
                var age = now - Time.FromMs(sentAt);
                var every = TimeSpan.FromTicks(Math.Min(TimeSpan.FromHours(1).Ticks, age.Ticks / 4));
                if (now - last < every)
                    continue;
            }
            _lastPolled[m.Id] = now;
            MessageResource twilio;
            try
            {
                twilio = await MessageResource.FetchAsync(m.ChannelRef!, pathAccountSid: options.Value.AccountSid, client: channel.Client);
            }
            catch (Exception e) when (e is ApiException or ApiConnectionException)
            {
                log.LogWarning("Twilio status of {Sid} ({Id}) unavailable: {Error}", m.ChannelRef, m.Id, e.Message);
                continue;
            }
            await ApplyAsync(m, twilio.Status?.ToString() ?? "", twilio.ErrorCode, twilio.ErrorMessage, ct);
        }
    }

    internal async Task ApplyAsync(MessageRow m, string status, int? errorCode, string? errorMessage, CancellationToken ct)
    {
        var now = NowMs;
        switch (status)
        {
            case "sent" or "delivered" when m.Status == MessageStatus.Sending:
                var sent = await store.TransitionAsync(DeliverySql.ConfirmSent, new
                {
                    m.Id, SentAt = now, Now = now, TrackUntil = Time.ToMs(time.GetUtcNow() + TimeSpan.FromDays(3)),
                }, code: "confirmed", detail: $"Twilio status {status}", ct: ct);
                if (sent is not null && status == "delivered")
                    await DeliveredAsync(sent, ct);
                break;
            case "delivered" when m.Status == MessageStatus.Sent && m.Delivery == DeliveryState.Unknown:
                await DeliveredAsync(m, ct);
                break;
            case "undelivered" or "failed" or "canceled":
                var reason = $"Twilio status {status}{(errorCode is null ? "" : $", error {errorCode}")}: {errorMessage ?? "no reason given"}";
                if (errorCode == 21610 && m.RecipientPhone is not null)
                    await using (var c = await store.Db.OpenAsync(ct))
                        await SuppressionList.AddAsync(c, null, m.RecipientPhone, "Twilio 21610: unsubscribed recipient", SuppressionList.Sources.Twilio, m.Id, now);
                if (m.Status == MessageStatus.Sending)
                    await store.TransitionAsync(DeliverySql.Fail, new
                    {
                        m.Id, Code = errorCode == 21610 ? "suppressed" : $"twilio_{status}", Message = reason,
                        ChannelError = (long?)errorCode, FallbackTo = (string?)null, Now = now,
                    }, ct: ct);
                else
                    await store.TransitionAsync(DeliverySql.NotDelivered, new { m.Id, ChannelError = (long?)errorCode, Now = now },
                        code: $"twilio_{status}", detail: reason, eventStatus: DeliveryState.NotDelivered, ct: ct);
                break;
        }
    }

    private async Task DeliveredAsync(MessageRow m, CancellationToken ct)
    {
        await store.TransitionAsync(DeliverySql.Delivered, new { m.Id, At = NowMs, Now = NowMs },
            detail: "Twilio status delivered", eventStatus: DeliveryState.Delivered, ct: ct);
        await using var c = await store.Db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition("UPDATE messages SET track_until = NULL WHERE id = @Id", new { m.Id }, cancellationToken: ct));
    }

    private long NowMs => Time.ToMs(time.GetUtcNow());
}
