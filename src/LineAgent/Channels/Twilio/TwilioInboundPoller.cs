using System.Globalization;
using Dapper;
using LineAgent.Delivery;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.Extensions.Options;
using ResourceSetOfMessages = Twilio.Base.ResourceSet<Twilio.Rest.Api.V2010.Account.MessageResource>;
using Twilio.Exceptions;
using Twilio.Rest.Api.V2010.Account;
using Twilio.Types;

namespace LineAgent.Channels.Twilio;

/// <summary>
/// Replies that reach a Twilio line's number. A loopback agent gets no Twilio callbacks, so it reads Twilio's Messages
/// list (To = the line's number, sent since its watermark) every Twilio:InboundPollInterval and hands each inbound
/// message to <see cref="ReplyIntake"/>, which stores it as a reply and cancels the sender's stop-on-reply messages in
/// the same transaction. The watermark starts at the first start (history before the agent is not imported); a
/// message seen twice is taken once (its SID is the reply's channel ref).
/// </summary>
public sealed class TwilioInboundPoller(
    TwilioSmsChannel channel,
    ReplyIntake replies,
    LineRegistry lines,
    Db db,
    IOptions<TwilioOptions> options,
    TimeProvider time,
    ILogger<TwilioInboundPoller> log) : WorkerLoop(time, log)
{
    /// <summary>Twilio filters by the day sent; a message written late in a page is still found this long after.</summary>
    private static readonly TimeSpan Overlap = TimeSpan.FromMinutes(10);

    private IReadOnlyList<LineOptions> TwilioLines => lines.All
        .Where(l => l.Sms.Enabled && l.Sms.Via == SmsLineOptions.ViaTwilio && !string.IsNullOrWhiteSpace(l.Sms.From)).ToList();

    protected override Task<bool> StartingAsync(CancellationToken ct) =>
        Task.FromResult(channel.IsConfigured && TwilioLines.Count > 0);

    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        await PollOnceAsync(ct);
        return Clock.GetUtcNow() + options.Value.InboundPollInterval;
    }

    internal async Task PollOnceAsync(CancellationToken ct)
    {
        foreach (var line in TwilioLines)
        {
            var key = $"twilio.inbound.{line.Id}.since";
            var since = await WatermarkAsync(key, ct);
            var newest = since;
            ResourceSetOfMessages page;
            try
            {
                page = await MessageResource.ReadAsync(new ReadMessageOptions
                {
                    PathAccountSid = options.Value.AccountSid,
                    To = new PhoneNumber(line.Sms.From),
                    DateSentAfter = (since - Overlap).UtcDateTime.Date,
                    PageSize = 100,
                }, channel.Client);
            }
            catch (Exception e) when (e is ApiException or ApiConnectionException)
            {
                log.LogWarning("Twilio inbound messages of line {Line} unavailable: {Error}", line.Id, e.Message);
                continue;
            }
            // Twilio lists newest first; the intake takes a sender's replies in order and ignores one older than the newest
            // it has (history), so a STOP followed within one poll by another text was dropped. Oldest first, then by SID.
            var inbound = new List<(DateTimeOffset Date, string From, MessageResource Message)>();
            foreach (var m in page)
            {
                if (m.Direction != MessageResource.DirectionEnum.Inbound || m.From is null)
                    continue;
                var date = Utc(m.DateSent ?? m.DateCreated);
                if (date is null || date < since - Overlap)
                    continue;
                if (!Recipients.TryNormalizePhone(m.From.ToString(), "US", out var from, out _))
                    continue;
                inbound.Add((date.Value, from, m));
            }
            foreach (var (date, from, m) in inbound.OrderBy(i => i.Date).ThenBy(i => i.Message.Sid, StringComparer.Ordinal))
            {
                await replies.TakeReplyAsync(new InboundMessage(from, date, m.Body, MessageType.Sms, TwilioSmsChannel.ChannelName, m.Sid,
                    $"Twilio {m.Sid} to {line.Sms.From}"), ct);
                if (date > newest)
                    newest = date;
            }
            if (newest > since)
                await SaveWatermarkAsync(key, newest, ct);
        }
    }

    private static DateTimeOffset? Utc(DateTime? t) => t is not { } v ? null : v.Kind switch
    {
        DateTimeKind.Local => new DateTimeOffset(v.ToUniversalTime(), TimeSpan.Zero),
        _ => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc), TimeSpan.Zero),
    };

    private async Task<DateTimeOffset> WatermarkAsync(string key, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var value = await c.ExecuteScalarAsync<string?>(new CommandDefinition(DeliverySql.GetState, new { Key = key }, cancellationToken: ct));
        if (value is not null)
            return Time.FromMs(long.Parse(value, CultureInfo.InvariantCulture));
        // First start: replies begin now; what the number received before this agent is history.
        var now = Clock.GetUtcNow();
        await SaveWatermarkAsync(key, now, ct);
        return now;
    }

    private async Task SaveWatermarkAsync(string key, DateTimeOffset at, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(DeliverySql.SetState,
            new { Key = key, Value = Time.ToMs(at).ToString(CultureInfo.InvariantCulture) }, cancellationToken: ct));
    }
}
