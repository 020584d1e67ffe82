using System.Globalization;
using Dapper;
using LineAgent.Delivery;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.Extensions.Options;
using Twilio.Exceptions;
using Twilio.Rest.Api.V2010.Account;
using Twilio.Types;

namespace LineAgent.Channels.Twilio;

/// <summary>
/// Replies that reach a Twilio line's number. A loopback agent gets no Twilio callbacks, so it reads Twilio's Messages
/// list (To = each of the line's numbers: its Sms:From and its Messaging Service's; sent since that number's
/// watermark) every Twilio:InboundPollInterval and hands each inbound message to <see cref="ReplyIntake"/>, which
/// stores it as a reply and cancels the sender's stop-on-reply messages in the same transaction. The watermark starts at the first start (history before the agent is not imported); a
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

    /// <summary>How long a Messaging Service's list of numbers is used before it is read again.</summary>
    internal static readonly TimeSpan ServiceNumbersFor = TimeSpan.FromMinutes(5);

    /// <summary>Each Messaging Service's lists ("{sid}/phone numbers", "{sid}/short codes"); only the poll loop touches it.</summary>
    private readonly Dictionary<string, (DateTimeOffset NextRead, IReadOnlyList<string> Items)> _serviceLists = new(StringComparer.Ordinal);

    private IReadOnlyList<LineOptions> TwilioLines => lines.All
        .Where(l => l.Sms.Enabled && l.Sms.Via == SmsLineOptions.ViaTwilio
            && (!string.IsNullOrWhiteSpace(l.Sms.From) || !string.IsNullOrWhiteSpace(l.Sms.MessagingServiceSid))).ToList();

    private readonly TaskCompletionSource _firstPass = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes when the first poll of this run has ended (the replies that came while the agent was down taken in, or
    /// Twilio's fault logged), or at once when there is nothing to poll: the dispatcher claims nothing before
    /// (<see cref="Scheduling.StartupRecovery"/>), so a STOP sent during a restart suppresses the message due meanwhile.
    /// </summary>
    public Task FirstPass => _firstPass.Task;

    /// <summary>
    /// How long the start waits for <see cref="FirstPass"/> at most: Twilio slow or down must not hold every line. Twilio:Timeout,
    /// and never more than a minute (an infinite Twilio:Timeout would have held sending for good).
    /// </summary>
    public TimeSpan FirstPassWait => options.Value.Timeout > TimeSpan.Zero && options.Value.Timeout < TimeSpan.FromMinutes(1)
        ? options.Value.Timeout
        : TimeSpan.FromMinutes(1);

    protected override Task<bool> StartingAsync(CancellationToken ct)
    {
        var polls = channel.IsConfigured && TwilioLines.Count > 0;
        if (!polls)
            _firstPass.TrySetResult();
        return Task.FromResult(polls);
    }

    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        try
        {
            await PollOnceAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Not Twilio's fault (those are logged per number inside): the loop logs it and tries again; the start waits no
            // longer for it than FirstPassWait either way, so it is let go now.
            _firstPass.TrySetResult();
            throw;
        }
        // Only a pass that ended: one cut short by the stop read nothing, and must not release the dispatcher (review).
        _firstPass.TrySetResult();
        return Clock.GetUtcNow() + options.Value.InboundPollInterval;
    }

    internal async Task PollOnceAsync(CancellationToken ct)
    {
        foreach (var line in TwilioLines)
            foreach (var number in await NumbersAsync(line, ct))
                await PollNumberAsync(line, number, ct);
    }

    /// <summary>
    /// The numbers a line's replies reach: its Sms:From, and every phone number and short code of its Messaging Service
    /// ("Inbound messages received on any phone number associated to a Messaging Service are passed to the inbound
    /// request URL of the Service": Twilio, Messaging Service PhoneNumber resource), read through the Services API every
    /// few minutes.
    /// A line with only a Messaging Service had its replies, and with them STOP, never read.
    /// </summary>
    private async Task<IReadOnlyList<string>> NumbersAsync(LineOptions line, CancellationToken ct)
    {
        var numbers = new List<string>();
        if (FromOf(line) is { } from)
            numbers.Add(from);
        if (line.Sms.MessagingServiceSid is not { Length: > 0 } service)
            return numbers;
        // Each list is read on its own: one that fails keeps what it read last (none before its first success) and is
        // tried again after ServiceListRetry, without losing the other.
        numbers.AddRange(await ServiceListAsync(line, service, "phone numbers", async () =>
        {
            var read = new List<string>();
            var pool = await global::Twilio.Rest.Messaging.V1.Service.PhoneNumberResource.ReadAsync(
                new global::Twilio.Rest.Messaging.V1.Service.ReadPhoneNumberOptions(service) { PageSize = 400 }, channel.Client);
            foreach (var n in pool.ToList()) // iterating reads any further page synchronously: inside the try
                if (n.PhoneNumber?.ToString() is { Length: > 0 } p && Recipients.TryNormalizePhone(p, "US", out var e164, out _))
                    read.Add(e164);
            return read;
        }));
        // Short codes too: "Inbound messages received on any of short codes associated with a Messaging Service are passed
        // to the inbound request URL of the Service" (Twilio, Messaging Service ShortCode resource). A short code (5-6
        // digits) is no E.164 number: it is polled as bare digits, as Twilio lists it.
        numbers.AddRange(await ServiceListAsync(line, service, "short codes", async () =>
        {
            var read = new List<string>();
            var list = await global::Twilio.Rest.Messaging.V1.Service.ShortCodeResource.ReadAsync(
                new global::Twilio.Rest.Messaging.V1.Service.ReadShortCodeOptions(service) { PageSize = 400 }, channel.Client);
            foreach (var c in list.ToList())
                if (c.ShortCode?.Trim().TrimStart('+') is { Length: > 0 } code && code.All(char.IsAsciiDigit))
                    read.Add(code);
            return read;
        }));
        return numbers.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>A failed list of a Messaging Service is asked again after this (a success is kept for ServiceNumbersFor).</summary>
    internal static readonly TimeSpan ServiceListRetry = TimeSpan.FromMinutes(1);

    /// <summary>One list of a service (its phone numbers or its short codes), read again when it is due.</summary>
    private async Task<IReadOnlyList<string>> ServiceListAsync(LineOptions line, string service, string what,
        Func<Task<IReadOnlyList<string>>> read)
    {
        var key = $"{service}/{what}";
        var now = Clock.GetUtcNow();
        var known = _serviceLists.GetValueOrDefault(key, (NextRead: DateTimeOffset.MinValue, Items: []));
        if (now < known.NextRead)
            return known.Items;
        try
        {
            known = (now + ServiceNumbersFor, await read());
        }
        catch (Exception e) when (IsTwilioFault(e))
        {
            log.LogWarning("Twilio Messaging Service {Service} of line {Line}: its {What} are unavailable, so replies to them are not read yet: {Error}",
                service, line.Id, what, e.Message);
            known = (now + ServiceListRetry, known.Items);
        }
        _serviceLists[key] = known;
        return known.Items;
    }

    private async Task PollNumberAsync(LineOptions line, string number, CancellationToken ct)
    {
        // Sms:From keeps the key it had before Messaging Service numbers were read.
        var key = number == FromOf(line) ? $"twilio.inbound.{line.Id}.since" : $"twilio.inbound.{line.Id}.{number}.since";
        var since = await WatermarkAsync(key, ct);
        var newest = since;
        List<MessageResource> page;
        try
        {
            // Iterating a ResourceSet fetches its next pages synchronously: read them all here, where a fault is caught.
            page = (await MessageResource.ReadAsync(new ReadMessageOptions
            {
                PathAccountSid = options.Value.AccountSid,
                To = new PhoneNumber(number),
                DateSentAfter = (since - Overlap).UtcDateTime.Date,
                PageSize = 100,
            }, channel.Client)).ToList();
        }
        catch (Exception e) when (IsTwilioFault(e))
        {
            log.LogWarning("Twilio inbound messages of line {Line} to {Number} unavailable: {Error}", line.Id, number, e.Message);
            return;
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
                $"Twilio {m.Sid} to {number}"), ct);
            if (date > newest)
                newest = date;
        }
        if (newest > since)
            await SaveWatermarkAsync(key, newest, ct);
    }

    /// <summary>The line's Sms:From in E.164 (as the pool's numbers are), or null.</summary>
    private static string? FromOf(LineOptions line) =>
        string.IsNullOrWhiteSpace(line.Sms.From) ? null
        : Recipients.TryNormalizePhone(line.Sms.From, "US", out var e164, out _) ? e164 : line.Sms.From.Trim();

    /// <summary>What Twilio or the network answered; a further page's fault arrives wrapped by the SDK's reflection.</summary>
    private static bool IsTwilioFault(Exception e) =>
        e is ApiException or ApiConnectionException
        || e is System.Reflection.TargetInvocationException { InnerException: ApiException or ApiConnectionException };

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
