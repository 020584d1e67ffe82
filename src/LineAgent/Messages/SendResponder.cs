using System.Text.Json;
using LineAgent.Api;
using LineAgent.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LineAgent.Messages;

/// <summary>The answer to a request that sends: the HTTP status and the message as it then stood.</summary>
public sealed record SendAnswer(int Status, MessageDto Message)
{
    public Results<Created<MessageDto>, Accepted<MessageDto>, ProblemHttpResult> ToResult() => Status switch
    {
        201 => TypedResults.Created($"/api/messages/{Message.Id}", Message),
        202 => TypedResults.Accepted($"/api/messages/{Message.Id}", Message),
        _ => DeliveryFailed(Message),
    };

    public static ProblemHttpResult DeliveryFailed(MessageDto m) => Problems.Of(500, "delivery_failed",
        $"Message {m.Id} failed: {m.Error?.Message ?? m.Error?.Code ?? "unknown reason"}",
        new Dictionary<string, object?> { ["messageId"] = m.Id, ["message"] = m });

    /// <summary>The body as it goes on the wire, kept for Idempotency-Key replays.</summary>
    public string SerializeBody() => Status == 500
        ? JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["type"] = "https://tools.ietf.org/html/rfc9110#section-15.6.1", ["title"] = "The message failed.",
            ["status"] = 500, ["detail"] = $"Message {Message.Id} failed: {Message.Error?.Message ?? Message.Error?.Code}",
            ["code"] = "delivery_failed", ["messageId"] = Message.Id, ["message"] = Message,
        }, AgentJson.Options)
        : JsonSerializer.Serialize(Message, AgentJson.Options);

    public string ContentType => Status == 500 ? "application/problem+json" : "application/json";
}

/// <summary>Waits (up to Api:SendWaitSeconds) for a send-now message to settle, then says how it stands.</summary>
public sealed class SendResponder(MessageStore store, MessageNotifier notifier, Channels.ChannelRouter channels, TimeProvider time, IOptions<ApiOptions> api,
    IHostApplicationLifetime lifetime)
{
    /// <summary>
    /// Waits for the message to settle. An iMessage that failed and fell back to SMS is followed to its
    /// fallback, and the answer is the SMS (whose fallbackFrom names the failed iMessage). When the agent stops meanwhile,
    /// the answer is the message as it stands, at once: a wait that outlasted the shutdown left the client with a closed
    /// connection and no answer (probe: a send waiting on a hung Messages, then SIGTERM), and a client without an answer
    /// may send the message again.
    /// </summary>
    public async Task<SendAnswer> AwaitAsync(string id, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + TimeSpan.FromSeconds(api.Value.SendWaitSeconds);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
        var current = id;
        try
        {
            var row = await WaitOneAsync(current, deadline, waiting.Token);
            while (row.Status == MessageStatus.Failed && row.FallbackTo is { } next)
                row = await WaitOneAsync(current = next, deadline, waiting.Token);
            return Answer(row);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            return Answer(await store.GetAsync(current, CancellationToken.None) ?? throw new InvalidOperationException($"message {current} vanished"));
        }
    }

    /// <summary>
    /// Waits in slices of <see cref="ShortHold"/> twice over, judging the row again after each: whether a hold is short depends on
    /// the clock, and a hold that grows without a change notification (a line-wide hold) or ends with nothing taking the row
    /// (the line paused) must not keep the request for all of Api:SendWaitSeconds (review of 3f58aef).
    /// </summary>
    private async Task<MessageRow> WaitOneAsync(string id, DateTimeOffset deadline, CancellationToken ct)
    {
        while (true)
        {
            var left = deadline - time.GetUtcNow();
            var slice = left < ShortHold * 2 ? left : ShortHold * 2;
            var row = await notifier.WaitAsync(id,
                async () => await store.GetAsync(id, ct) ?? throw new InvalidOperationException($"message {id} vanished"),
                IsSettled, slice > TimeSpan.Zero ? slice : TimeSpan.Zero, time, ct);
            if (IsSettled(row) || slice >= left)
                return row;
        }
    }

    /// <summary>
    /// Nothing more will happen soon: a final status, a hold (pacing, a busy channel), or a send its channel has taken where the
    /// final word takes minutes (Twilio's delivery status; the answer says `sending` with the SID). A hold that ends within
    /// <see cref="ShortHold"/> is waited out (one that ended longer ago than that, with nothing taking the row, is not): a send withheld because its recipient opted out or replied meanwhile goes back
    /// for a second, and the dispatcher then fails it `suppressed` or cancels it `replied` (review: answered 202 `queued`, the
    /// outcome only in a later GET).
    /// </summary>
    private bool IsSettled(MessageRow r) =>
        r.Status is MessageStatus.Sent or MessageStatus.Failed or MessageStatus.Cancelled or MessageStatus.Scheduled
        || (r.Status == MessageStatus.Queued && r.NotBefore is { } until && (Storage.Time.FromMs(until) - time.GetUtcNow()).Duration() > ShortHold)
        || (r.Status == MessageStatus.Sending && r.ChannelRef is not null && channels.ByName(r.Channel)?.Capabilities.SettledOnAccept == true);

    /// <summary>A hold this short is waited for (within Api:SendWaitSeconds) rather than answered as `queued`.</summary>
    public static readonly TimeSpan ShortHold = TimeSpan.FromSeconds(2);

    public static SendAnswer Answer(MessageRow r) => new(r.Status switch
    {
        MessageStatus.Failed => 500,
        MessageStatus.Queued => 202,
        _ => 201,
    }, MessageDto.From(r));
}
