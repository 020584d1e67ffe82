using Dapper;
using LineAgent.Delivery;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using LineAgent.Suppressions;
using Microsoft.Extensions.Options;
using Twilio.Exceptions;
using Twilio.Rest.Api.V2010.Account;
using DeliveryState = LineAgent.Messages.Delivery;

namespace LineAgent.Channels.Twilio;

/// <summary>
/// Follows Twilio messages until their status is final: `sent`/`delivered` → sent (and delivered),
/// `undelivered` → sent and not delivered, `failed`/`canceled` → failed with Twilio's error code (or not_delivered when already
/// sent); no final status within Twilio:ConfirmTimeout → failed `unconfirmed`.
/// </summary>
public sealed class TwilioStatusPoller(
    TwilioSmsChannel channel,
    MessageLifecycle lifecycle,
    SuppressionList suppressions,
    MessageNotifier notifier,
    IOptions<TwilioOptions> options,
    TimeProvider time,
    ILogger<TwilioStatusPoller> log) : WorkerLoop(time, log)
{
    private const string Open = """
        SELECT * FROM messages
        WHERE channel = 'twilio' AND channel_ref IS NOT NULL AND (status = 'sending' OR (track_until IS NOT NULL AND track_until > @Now))
        ORDER BY seq
        """;

    private readonly Dictionary<string, DateTimeOffset> _lastPolled = [];

    protected override Task<bool> StartingAsync(CancellationToken ct)
    {
        if (!channel.IsConfigured)
            return Task.FromResult(false);
        notifier.Changed += OnChanged;
        return Task.FromResult(true);
    }

    protected override void Stopped() => notifier.Changed -= OnChanged;

    /// <summary>Only a send Twilio just took needs a look now.</summary>
    private void OnChanged(MessageChange change)
    {
        if (change.Transition == Transitions.ChannelAccepted && change.Row.Channel == TwilioSmsChannel.ChannelName)
            Wake();
    }

    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        await PollOnceAsync(ct);
        return Clock.GetUtcNow() + options.Value.StatusPollInterval;
    }

    internal async Task PollOnceAsync(CancellationToken ct)
    {
        var open = await lifecycle.Store.QueryAsync(Open, new { Now = NowMs }, ct);
        var now = Clock.GetUtcNow();
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
                await GiveUpIfOverdueAsync(m, $"its status could not be read ({e.Message})", ct);
                continue;
            }
            var status = twilio.Status?.ToString() ?? "";
            await ApplyAsync(m, status, twilio.ErrorCode, twilio.ErrorMessage, ct);
            await GiveUpIfOverdueAsync(m, $"its last status was '{status}'", ct);
        }
    }

    /// <summary>
    /// A message still `sending` past Twilio:ConfirmTimeout after Twilio took it fails `unconfirmed` (it may have gone out:
    /// not resent). Before, a SID that answered 404 (deleted, or another account) or 401 kept it `sending` forever.
    /// </summary>
    private async Task GiveUpIfOverdueAsync(MessageRow m, string why, CancellationToken ct)
    {
        if (m.Status != MessageStatus.Sending)
            return;
        var since = m.HandedAt ?? m.ClaimedAt ?? m.UpdatedAt;
        var timeout = options.Value.ConfirmTimeout;
        if (Clock.GetUtcNow() - Time.FromMs(since) < timeout)
            return;
        if (await lifecycle.Store.GetAsync(m.Id, ct) is not { Status: MessageStatus.Sending })
            return; // settled by this pass
        await lifecycle.FailDeliveryAsync(m.Id, FailureCodes.Unconfirmed,
            $"Twilio took it ({m.ChannelRef}) but gave no final status within {timeout.TotalHours:0.#} h; {why}. It may have been sent, so it is not sent again.",
            null, ct);
    }

    internal async Task ApplyAsync(MessageRow m, string status, int? errorCode, string? errorMessage, CancellationToken ct)
    {
        var now = NowMs;
        switch (status)
        {
            // `read` (RCS, WhatsApp: it was delivered and read) and `partially_delivered` (part of it delivered) both say it left
            // Twilio. Review: a first look that saw them while `sending` changed nothing, and after Twilio:ConfirmTimeout the
            // message failed `unconfirmed`, though it had been read.
            case "sent" or "delivered" or "read" or "partially_delivered" when m.Status == MessageStatus.Sending:
                var sent = await lifecycle.ConfirmAsync(m.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromDays(3), $"Twilio status {status}", ct);
                if (sent is not null && status == "delivered")
                    await DeliveredAsync(sent, ct);
                else if (sent is not null && status == "read")
                    await lifecycle.ReadAsync(sent.Id, Clock.GetUtcNow(), "Twilio status read", ct);
                break;
            case "read" when m.Status == MessageStatus.Sent && m.Delivery is DeliveryState.Unknown or DeliveryState.Delivered:
                await lifecycle.ReadAsync(m.Id, Clock.GetUtcNow(), "Twilio status read", ct);
                break;
            case "delivered" when m.Status == MessageStatus.Sent && m.Delivery == DeliveryState.Unknown:
                await DeliveredAsync(m, ct);
                break;
            case "undelivered" when m.Status == MessageStatus.Sending:
                // Twilio: "received a delivery receipt indicating that the Message was not delivered": it left Twilio, so it was
                // sent, and not delivered. The same as when a pass saw `sent` first (before, that order gave sent + not
                // delivered and this one failed, with a retry that needed no force).
                // Tracked like any sent one: if the second write does not happen, the next pass still records not delivered.
                if (await lifecycle.ConfirmAsync(m.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromDays(3), $"Twilio status {status}", ct) is { } confirmed)
                    await ApplyAsync(confirmed, status, errorCode, errorMessage, ct);
                break;
            case "undelivered" or "failed" or "canceled":
                var reason = $"Twilio status {status}{(errorCode is null ? "" : $", error {errorCode}")}: {errorMessage ?? "no reason given"}";
                if (errorCode == 21610 && m.RecipientPhone is not null)
                    await suppressions.AddAsync(m.RecipientPhone, "Twilio 21610: unsubscribed recipient", SuppressionList.Sources.Twilio, m.Id, ct);
                if (m.Status == MessageStatus.Sending)
                    await lifecycle.FailDeliveryAsync(m.Id, errorCode == 21610 ? FailureCodes.Suppressed : FailureCodes.TwilioStatus(status), reason, errorCode, ct);
                else
                    await lifecycle.NotDeliveredAsync(m.Id, FailureCodes.TwilioStatus(status), errorCode, reason, ct);
                break;
        }
    }

    private Task<MessageRow?> DeliveredAsync(MessageRow m, CancellationToken ct) =>
        lifecycle.DeliveredAsync(m.Id, Clock.GetUtcNow(), "Twilio status delivered", endTracking: true, ct: ct);

    private long NowMs => Time.ToMs(Clock.GetUtcNow());
}
