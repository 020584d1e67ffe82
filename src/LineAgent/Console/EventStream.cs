using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using LineAgent.Api;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.WebConsole;

/// <summary>One event of the stream: the message as it now stands and the transition that made it.</summary>
public sealed record MessageEvent(string Transition, MessageDto Message);

/// <summary>
/// GET /api/events/stream: Server-Sent Events of every committed message change (event `message`, data a
/// <see cref="MessageEvent"/>), fed by the <see cref="MessageNotifier"/>; a `ready` event once subscribed and
/// a `ping` every 30 s. Same auth as the rest of /api (the console's cookie, or the bearer token). A client
/// that falls more than <see cref="Buffer"/> changes behind loses the oldest; it reloads what it shows when
/// it reconnects. The stream ends when the agent stops, so it never holds up a shutdown.
/// </summary>
internal static class EventStream
{
    public const int Buffer = 1000;
    public static readonly TimeSpan PingEvery = TimeSpan.FromSeconds(30);

    public static IEndpointRouteBuilder MapEventStream(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/events/stream", Stream).WithTags("Events").WithName("StreamEvents");
        return app;
    }

    /// <summary>A browser's stream ends with its session: at sign-out at once, at the idle or total timeout by the next ping.</summary>
    internal static ServerSentEventsResult<string> Stream(
        MessageNotifier notifier, IHostApplicationLifetime lifetime, ConsoleSessions sessions, HttpContext http) =>
        TypedResults.ServerSentEvents(Changes(notifier, sessions, ConsoleSessions.Of(http), lifetime.ApplicationStopping, http.RequestAborted));

    private static async IAsyncEnumerable<SseItem<string>> Changes(
        MessageNotifier notifier, ConsoleSessions sessions, ConsoleSession? session, CancellationToken stopping,
        [EnumeratorCancellation] CancellationToken aborted)
    {
        var changes = Channel.CreateBounded<MessageChange>(new BoundedChannelOptions(Buffer)
        {
            FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = false,
        });
        // Runs on the writer's thread after each commit: it must only hand the change over.
        void OnChanged(MessageChange change) => changes.Writer.TryWrite(change);
        notifier.Changed += OnChanged;
        using var done = CancellationTokenSource.CreateLinkedTokenSource(stopping, aborted, session?.Ended ?? CancellationToken.None);
        try
        {
            long id = 0;
            yield return new SseItem<string>("{}", "ready") { EventId = (++id).ToString(System.Globalization.CultureInfo.InvariantCulture), ReconnectionInterval = TimeSpan.FromSeconds(2) };
            while (!done.IsCancellationRequested)
            {
                var ready = await WaitAsync(changes.Reader, done.Token);
                if (ready is null || (session is not null && !sessions.IsLive(session)))
                    yield break;
                if (ready == false)
                {
                    yield return new SseItem<string>("{}", "ping");
                    continue;
                }
                while (changes.Reader.TryRead(out var change))
                {
                    var data = JsonSerializer.Serialize(new MessageEvent(change.Transition, MessageDto.From(change.Row)), AgentJson.Options);
                    yield return new SseItem<string>(data, "message") { EventId = (++id).ToString(System.Globalization.CultureInfo.InvariantCulture) };
                }
            }
        }
        finally
        {
            notifier.Changed -= OnChanged;
        }
    }

    /// <summary>True: changes to read; false: time for a ping; null: the client left or the agent is stopping.</summary>
    private static async Task<bool?> WaitAsync(ChannelReader<MessageChange> reader, CancellationToken ct)
    {
        using var ping = CancellationTokenSource.CreateLinkedTokenSource(ct);
        ping.CancelAfter(PingEvery);
        try
        {
            return await reader.WaitToReadAsync(ping.Token);
        }
        catch (OperationCanceledException)
        {
            return ct.IsCancellationRequested ? null : false;
        }
    }
}
