using System.Diagnostics;
using Dapper;
using LineAgent.Bridge.ChatDb;
using LineAgent.Channels;
using LineAgent.Channels.Messages;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Availability;

public static class IMessageAvailability
{
    public const string Available = "available";
    public const string Unavailable = "unavailable";
    public const string Unknown = "unknown";
}

public static class AvailabilitySource
{
    public const string History = "history";
    public const string MessagesDb = "messages-db";
    public const string Probe = "probe";
    public const string None = "none";
}

/// <summary>The blue/gray answer for one address, and where it came from.</summary>
public sealed record AvailabilityResult(
    string Address, [property: System.Text.Json.Serialization.JsonPropertyName("imessage")] string IMessage, string SendAs, string Source, DateTimeOffset CheckedAt);

/// <summary>
/// Whether an address has iMessage: first this agent's own delivery history, then Messages' handle
/// history in chat.db, then the optional probe (Bridge:AvailabilityProbe); answers are cached for
/// Bridge:AvailabilityTtl. `unknown` when nothing is known.
/// </summary>
public sealed class AvailabilityService : IDisposable
{
    /// <summary>How long an answer is reused in memory; a change of this agent's own records evicts it at once.</summary>
    public static readonly TimeSpan MemoFor = TimeSpan.FromSeconds(10);

    private readonly Db db;
    private readonly MessagesBridge bridge;
    private readonly MessageNotifier notifier;
    private readonly TimeProvider time;
    private readonly ILogger<AvailabilityService> log;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (AvailabilityResult Result, DateTimeOffset At, bool Probed)> _memo = new();

    public AvailabilityService(Db db, MessagesBridge bridge, MessageNotifier notifier, TimeProvider time, ILogger<AvailabilityService> log)
    {
        this.db = db;
        this.bridge = bridge;
        this.notifier = notifier;
        this.time = time;
        this.log = log;
        notifier.Changed += OnChanged;
    }

    /// <summary>
    /// An outcome of an iMessage (delivered, read, failed, not delivered: error 22 after sending is recorded as
    /// imessage_unavailable on the sent row) or a reply can change the answer for its address; a new message cannot.
    /// </summary>
    private void OnChanged(MessageChange change)
    {
        if (change.Transition is not (Transitions.Delivered or Transitions.Read or Transitions.Fail or Transitions.NotDelivered or Transitions.Receive))
            return;
        if (change.Row.RecipientPhone is { } phone) _memo.TryRemove(phone, out _);
        if (change.Row.RecipientEmail is { } email) _memo.TryRemove(email, out _);
    }

    public void Dispose() => notifier.Changed -= OnChanged;

    /// <summary>
    /// The answer for one address. Repeated questions within <see cref="MemoFor"/> are answered from memory
    /// (a send to the same lead a thousand times must not read the database a thousand times); any committed
    /// change to a message for that address forgets it.
    /// </summary>
    public async Task<AvailabilityResult> CheckAsync(string address, CancellationToken ct, bool allowProbe = true)
    {
        var now = time.GetUtcNow();
        if (_memo.TryGetValue(address, out var memo) && now - memo.At < MemoFor && (memo.Probed || !allowProbe))
            return memo.Result;
        var result = await LookUpAsync(address, now, allowProbe, ct);
        _memo[address] = (result, now, allowProbe);
        return result;
    }

    private async Task<AvailabilityResult> LookUpAsync(string address, DateTimeOffset now, bool allowProbe, CancellationToken ct)
    {
        // Our own history and Messages' database both hold evidence; the newer one wins (a number that moved
        // to Android shows up as an RCS conversation after our last delivered iMessage).
        var history = await FromHistoryAsync(address, ct);
        var messagesDb = FromMessagesDb(address);
        var newest = history is { } h && messagesDb is { } d ? (d.Item3 > h.Item3 ? d : h) : history ?? messagesDb;
        var (imessage, source, at) = newest
            ?? await FromCacheAsync(address, now, ct)
            ?? (allowProbe ? await FromProbeAsync(address, ct) : null)
            ?? (IMessageAvailability.Unknown, AvailabilitySource.None, now);
        if (source is AvailabilitySource.History or AvailabilitySource.MessagesDb or AvailabilitySource.Probe)
            await CacheAsync(address, imessage, source, at, ct);
        return new AvailabilityResult(address, imessage, SendAs(address, imessage), source, at);
    }

    /// <summary>
    /// Many addresses at once, decided as <see cref="CheckAsync"/> decides one (without the probe): this agent's history and
    /// Messages' chat.db, the newer of the two wins, else a cached answer. Three statements, whatever the number of addresses:
    /// what a bulk send of thousands can afford. Missing = unknown. (Before, chat.db was not read and history beat a newer
    /// answer: a number whose chat.db showed only RCS went as iMessage, failed 22 and went again as SMS; an email with iMessage
    /// history in chat.db was refused for want of an email channel; probe H.)
    /// </summary>
    public async Task<Dictionary<string, string>> KnownManyAsync(IReadOnlyCollection<string> addresses, CancellationToken ct)
    {
        var known = new Dictionary<string, string>();
        var cutoff = Time.ToMs(time.GetUtcNow() - bridge.Options.AvailabilityTtl);
        var distinct = addresses.Distinct().ToList();
        var list = SqlList.Of(distinct);
        var evidence = new Dictionary<string, (string Verdict, DateTimeOffset At)>();
        await using (var c = await db.OpenAsync(ct))
        {
            foreach (var (address, imessage) in await c.QueryAsync<(string Address, string IMessage)>(new CommandDefinition(
                "SELECT address AS Address, imessage AS IMessage FROM availability WHERE address IN (SELECT value FROM json_each(@A)) AND checked_at >= @Cutoff AND imessage <> 'unknown'",
                new { A = list, Cutoff = cutoff }, cancellationToken: ct)))
                known[address] = imessage;
            foreach (var (address, outcome) in await c.QueryAsync<(string Address, long Outcome)>(new CommandDefinition(
                OutcomesOfMany, new { A = list }, cancellationToken: ct)))
                evidence[address] = ((outcome & 1) != 0 ? IMessageAvailability.Unavailable : IMessageAvailability.Available, Time.FromMs(outcome >> 1));
        }
        foreach (var (address, row) in FromMessagesDbMany(distinct))
        {
            var verdict = row.IsRcs || row.Error == 22 ? IMessageAvailability.Unavailable : IMessageAvailability.Available;
            var at = row.Date ?? time.GetUtcNow();
            if (!evidence.TryGetValue(address, out var ours) || at > ours.At)
                evidence[address] = (verdict, at);
        }
        foreach (var (address, (verdict, _)) in evidence)
            known[address] = verdict;
        return known;
    }

    private IReadOnlyDictionary<string, ChatMessage> FromMessagesDbMany(IReadOnlyCollection<string> addresses)
    {
        if (bridge.Reader.RecentlyUnavailable)
            return new Dictionary<string, ChatMessage>();
        try
        {
            return bridge.Reader.LastEvidenceForMany(addresses);
        }
        catch (ChatDbUnavailableException)
        {
            return new Dictionary<string, ChatMessage>();
        }
    }

    /// <summary>Phone: iMessage unless known unavailable. Email: iMessage only if known available.</summary>
    public static string SendAs(string address, string imessage) => Recipients.LooksLikeEmail(address)
        ? imessage == IMessageAvailability.Available ? MessageType.IMessage : MessageType.Email
        : imessage == IMessageAvailability.Unavailable ? MessageType.Sms : MessageType.IMessage;

    /// <summary>
    /// An outbound iMessage that tells blue or gray: the WHERE of the partial indexes ix_messages_outcome_phone and
    /// ix_messages_outcome_email (migration 012), term for term, which SQLite needs to use them. `INDEXED BY` holds
    /// each lookup to its index: without ANALYZE statistics SQLite may prefer ix_messages_type (every iMessage row) for
    /// `type = 'imessage'`, and a statement that cannot use the named index fails to prepare instead of scanning.
    /// </summary>
    private const string OutcomeOfIMessage = """
        direction = 'outbound' AND type = 'imessage'
          AND ((status = 'sent' AND delivery IN ('delivered', 'read')) OR error_code = 'imessage_unavailable')
        """;

    /// <summary>
    /// The newest outcome to each address of @A (a JSON array) that has one, as Outcome = updated_at * 2 + 1 for error 22
    /// (gray), + 0 for delivered or read (blue): its time (for "the newer wins") and its verdict in one value of one probe.
    /// One index probe per address, to its newest outcome row; an address is a phone (recipient_phone) or an email
    /// (recipient_email of a row without a phone: an iMessage to a lead with both went to the phone).
    /// </summary>
    internal const string OutcomesOfMany = $"""
        SELECT Address, Outcome FROM (
          SELECT a.value AS Address, COALESCE(
            (SELECT m.updated_at * 2 + (m.error_code IS 'imessage_unavailable') FROM messages m INDEXED BY ix_messages_outcome_phone
             WHERE m.recipient_phone = a.value AND {OutcomeOfIMessage}
             ORDER BY m.updated_at DESC LIMIT 1),
            (SELECT m.updated_at * 2 + (m.error_code IS 'imessage_unavailable') FROM messages m INDEXED BY ix_messages_outcome_email
             WHERE m.recipient_email = a.value AND m.recipient_phone IS NULL AND {OutcomeOfIMessage}
             ORDER BY m.updated_at DESC LIMIT 1)) AS Outcome
          FROM json_each(@A) a)
        WHERE Outcome IS NOT NULL
        """;

    /// <summary>The newest outcome to @Address (a phone, or an email as in <see cref="OutcomesOfMany"/>).</summary>
    internal const string NewestOutcome = $"""
        SELECT Delivery, Status, ErrorCode, UpdatedAt FROM (
          SELECT * FROM (
            SELECT delivery AS Delivery, status AS Status, error_code AS ErrorCode, updated_at AS UpdatedAt
            FROM messages INDEXED BY ix_messages_outcome_phone
            WHERE recipient_phone = @Address AND {OutcomeOfIMessage}
            ORDER BY updated_at DESC LIMIT 1)
          UNION ALL
          SELECT * FROM (
            SELECT delivery AS Delivery, status AS Status, error_code AS ErrorCode, updated_at AS UpdatedAt
            FROM messages INDEXED BY ix_messages_outcome_email
            WHERE recipient_email = @Address AND recipient_phone IS NULL AND {OutcomeOfIMessage}
            ORDER BY updated_at DESC LIMIT 1))
        ORDER BY UpdatedAt DESC LIMIT 1
        """;

    /// <summary>The newest iMessage outcome to this address in our own records: delivered/read → blue, error 22 → gray.</summary>
    private async Task<(string, string, DateTimeOffset)?> FromHistoryAsync(string address, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var row = await c.QuerySingleOrDefaultAsync<(string Delivery, string Status, string? ErrorCode, long UpdatedAt)>(new CommandDefinition(
            NewestOutcome, new { Address = address }, cancellationToken: ct));
        if (row.Status is null)
            return null;
        var verdict = row.ErrorCode == FailureCodes.IMessageUnavailable ? IMessageAvailability.Unavailable : IMessageAvailability.Available;
        return (verdict, AvailabilitySource.History, Time.FromMs(row.UpdatedAt));
    }

    private async Task<(string, string, DateTimeOffset)?> FromCacheAsync(string address, DateTimeOffset now, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var row = await c.QuerySingleOrDefaultAsync<(string IMessage, string Source, long CheckedAt)>(new CommandDefinition(
            "SELECT imessage AS IMessage, source AS Source, checked_at AS CheckedAt FROM availability WHERE address = @Address",
            new { Address = address }, cancellationToken: ct));
        if (row.IMessage is null || now - Time.FromMs(row.CheckedAt) > bridge.Options.AvailabilityTtl || row.IMessage == IMessageAvailability.Unknown)
            return null;
        return (row.IMessage, row.Source, Time.FromMs(row.CheckedAt));
    }

    private (string, string, DateTimeOffset)? FromMessagesDb(string address)
    {
        if (bridge.Reader.RecentlyUnavailable)
            return null;
        try
        {
            // Only iMessage rows (delivered or inbound: blue; error 22: gray) and RCS conversations (gray) count.
            var row = bridge.Reader.LastEvidenceFor(address);
            if (row is null)
                return null;
            var verdict = row.IsRcs || row.Error == 22 ? IMessageAvailability.Unavailable : IMessageAvailability.Available;
            return (verdict, AvailabilitySource.MessagesDb, row.Date ?? time.GetUtcNow());
        }
        catch (ChatDbUnavailableException)
        {
            return null;
        }
    }

    private async Task<(string, string, DateTimeOffset)?> FromProbeAsync(string address, CancellationToken ct)
    {
        var probe = bridge.Options.AvailabilityProbe;
        if (string.IsNullOrWhiteSpace(probe))
            return null;
        var psi = new ProcessStartInfo(probe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(address);
        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync(ct);
            var errors = p.StandardError.ReadToEndAsync(ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(bridge.Options.ScriptTimeout);
            try { await p.WaitForExitAsync(timeout.Token); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                p.Kill(entireProcessTree: true);
                log.LogWarning("Availability probe timed out for {Address}", address);
                return null;
            }
            _ = await errors;
            var verdict = (await output).Trim().ToLowerInvariant() switch
            {
                "imessage" => IMessageAvailability.Available,
                "sms" => IMessageAvailability.Unavailable,
                _ => null,
            };
            return verdict is null ? null : (verdict, AvailabilitySource.Probe, time.GetUtcNow());
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log.LogWarning("Availability probe {Probe} cannot run: {Error}", probe, e.Message);
            return null;
        }
    }

    private async Task CacheAsync(string address, string imessage, string source, DateTimeOffset at, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO availability (address, imessage, source, checked_at) VALUES (@Address, @IMessage, @Source, @At)
            ON CONFLICT (address) DO UPDATE SET imessage = excluded.imessage, source = excluded.source, checked_at = excluded.checked_at
            """, new { Address = address, IMessage = imessage, Source = source, At = Time.ToMs(at) }, cancellationToken: ct));
    }
}

/// <summary>
/// `auto` by availability and by what the line can carry: a phone gets iMessage unless known
/// unavailable (then SMS), an email gets iMessage only if known available (else email). When the
/// preferred type has no channel on the line, or its channel has a lasting problem (iMessage signed out, no Full Disk
/// Access), the next one that has a usable channel is taken.
/// </summary>
public sealed class AvailabilityTypeRouter(AvailabilityService availability, ChannelRouter channels) : ITypeRouter
{
    public async Task<string> ResolveAutoAsync(LineOptions line, string? phone, string? email, CancellationToken ct)
    {
        var candidates = new List<string>();
        bool Carries(string type) => channels.Resolve(line, type) is not UnavailableChannel;
        if (phone is not null)
        {
            var blue = line.IMessage.Enabled && Carries(MessageType.IMessage)
                ? (await availability.CheckAsync(phone, ct, allowProbe: false)).IMessage
                : IMessageAvailability.Unavailable;
            if (blue != IMessageAvailability.Unavailable)
                candidates.Add(MessageType.IMessage);
            candidates.Add(MessageType.Sms);
        }
        if (email is not null)
        {
            if (phone is null && line.IMessage.Enabled && Carries(MessageType.IMessage)
                && (await availability.CheckAsync(email, ct, allowProbe: false)).IMessage == IMessageAvailability.Available)
                candidates.Add(MessageType.IMessage);
            candidates.Add(MessageType.Email);
        }
        // A type whose channel has a lasting problem (iMessage signed out, no Full Disk Access) is skipped: the health
        // check says so, and sending it anyway would fail or end unconfirmed. None usable: the first that a channel
        // carries, whose send then fails with its own reason; else the first choice, which the validator answers with a
        // 400 naming why no channel carries it.
        var usable = await channels.UsableTypesAsync(line, candidates, ct);
        bool Usable(string type) => usable.Contains(type);
        return candidates.FirstOrDefault(Usable)
               ?? candidates.FirstOrDefault(Carries)
               ?? candidates.First();
    }
}
