using System.Text;
using Dapper;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Webhooks;

public sealed class WebhookOptions
{
    public const string Section = "Webhooks";

    /// <summary>Per delivery attempt.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>An event still failing after this long is given up (marked failed). At least 24 h.</summary>
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromDays(3);

    /// <summary>
    /// A delivered or given-up event's row (its payload: the message, content and address included) is deleted this long
    /// after its last attempt (Maintenance, hourly); the delivery log reaches back this far. Pending ones are kept.
    /// </summary>
    public TimeSpan KeepDeliveriesFor { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): LAN services are what SSRF goes after.</summary>
    public bool AllowPrivateTargets { get; set; }

    /// <summary>
    /// 127/8, ::1, localhost. On by default: the agent, its API and its token are already on this machine, and a
    /// receiver on the same Mac (n8n, a script) is the common case.
    /// </summary>
    public bool AllowLoopbackTargets { get; set; } = true;
}

/// <summary>
/// Delivers queued webhook events: signed (Standard Webhooks), in order per message and subscription,
/// retried with growing backoff on any non-2xx (3xx included: redirects are not followed) or timeout until
/// <see cref="WebhookOptions.GiveUpAfter"/>. Every connection goes through <see cref="WebhookTargetGuard.ConnectAsync"/>.
/// </summary>
public sealed class WebhookSender(Db db, IOptions<WebhookOptions> options, WebhookTargetGuard guard, TimeProvider time, ILogger<WebhookSender> log)
    : WorkerLoop(time, log)
{
    private static readonly TimeSpan[] Backoff =
    [
        TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(10),
        TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), TimeSpan.FromHours(2), TimeSpan.FromHours(4),
    ];

    private const string Due = """
        SELECT d.*, w.url AS Url, w.secret AS Secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.webhook_id = @WebhookId AND d.status = 'pending' AND d.next_attempt_at <= @Now
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                          WHERE e.webhook_id = d.webhook_id AND e.message_id IS d.message_id AND e.status = 'pending' AND e.id < d.id)
        ORDER BY d.id LIMIT 50
        """;

    // No redirects (a 3xx is a failed attempt), no proxy (it would dial the target for us, past the guard), and every
    // connection opened by the guard, which resolves the name itself and checks each address it dials.
    // Made on the first delivery, so an agent without webhooks never loads the HTTP client stack (memory, README
    // Performance). A plain field: a Lazy<HttpClient> field would load System.Net.Http with this class.
    private HttpClient? _http;
    private bool _httpMade;
    private object? _httpGate;

    private HttpClient Http() => LazyInitializer.EnsureInitialized(ref _http!, ref _httpMade, ref _httpGate, () => new HttpClient(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        AllowAutoRedirect = false,
        UseProxy = false,
        ConnectCallback = guard.ConnectAsync,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    });

    public static TimeSpan BackoffFor(int attempts) => Backoff[Math.Min(attempts, Backoff.Length) - 1];

    /// <summary>Subscriptions delivered to at once: a receiver that hangs (up to Webhooks:Timeout per event) holds up only its own events.</summary>
    public const int ParallelSubscriptions = 8;

    /// <summary>
    /// The first pending event of each (subscription, message): what can be tried next (a later one waits for it, so
    /// it must not count as due, or a loop would start and find nothing, again and again). Subscriptions whose loop is
    /// running are left out (@Running, a JSON array): the loop wakes the worker when it ends.
    /// </summary>
    private const string Heads = """
        FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.webhook_id NOT IN (SELECT value FROM json_each(@Running))
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                          WHERE e.webhook_id = d.webhook_id AND e.message_id IS d.message_id AND e.status = 'pending' AND e.id < d.id)
        """;

    private const string DueSubscriptions = "SELECT DISTINCT d.webhook_id " + Heads + " AND d.next_attempt_at <= @Now";

    /// <summary>
    /// The next attempt still to come. What is due now is either a running loop's (it wakes the worker when it ends) or
    /// waits behind an earlier event (its loop sends it): neither may make the pass wake at once, or it would spin. Read
    /// from the due index (a range), not per pending row: a backlog of 100,000 events costs nothing here.
    /// </summary>
    private const string NextAttempt = "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at > @Now";

    /// <summary>
    /// Delivers what is due; returns when to look again. Woken by the outbox when a commit queued events. Each
    /// subscription is delivered to in its own loop (up to <see cref="ParallelSubscriptions"/> at once), which the pass does
    /// not wait for: before, one pass
    /// tried every due event of every subscription one after the other, so a receiver that never answered cost every
    /// other subscription 10 s per event of its own.
    /// </summary>
    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        _passPending = false;
        List<string> hooks;
        var now = Time.ToMs(Clock.GetUtcNow());
        await using (var c = await db.OpenAsync(ct))
            hooks = (await c.QueryAsync<string>(new CommandDefinition(DueSubscriptions,
                new { Now = now, Running = RunningJson() }, cancellationToken: ct))).AsList();
        // A subscription's loop runs on its own and the pass does not wait for it: a receiver that hangs holds up nothing
        // else, not even the next pass. A loop that ends wakes the worker, so an event that came meanwhile is not left.
        foreach (var hook in hooks)
            if (!_running.TryGetValue(hook, out var running) || running.IsCompleted)
            {
                var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _running[hook] = RunSubscriptionAsync(hook, registered.Task, ct);
                registered.SetResult(); // the loop starts only once it is in _running, so its end always removes it
            }
        await using var conn = await db.OpenAsync(ct);
        var next = await conn.ExecuteScalarAsync<long?>(new CommandDefinition(NextAttempt, new { Now = now }, cancellationToken: ct));
        var cap = Clock.GetUtcNow() + TimeSpan.FromMinutes(1);
        return next is { } n && Time.FromMs(n) < cap ? Time.FromMs(n) : cap;
    }

    private string RunningJson() => SqlList.Of(_running.Where(r => !r.Value.IsCompleted).Select(r => r.Key));

    /// <summary>Set when a subscription's loop ends, until the pass it wakes has started.</summary>
    private volatile bool _passPending;

    /// <summary>
    /// When nothing is being delivered and the pass after the last loop has run: the time the worker wakes at. Null while
    /// anything is in flight. Tests step a fake clock by it (<see cref="WorkerLoop.SleepingUntil"/> alone says nothing
    /// about the subscriptions' loops).
    /// </summary>
    public DateTimeOffset? IdleUntil => !_passPending && _running.Values.All(t => t.IsCompleted) ? SleepingUntil : null;

    /// <summary>The subscriptions' loops end with the worker's stopping token; their last writes are waited for.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await Task.WhenAll(_running.Values).WaitAsync(cancellationToken);
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException)
        {
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task> _running = new();
    private readonly SemaphoreSlim _slots = new(ParallelSubscriptions, ParallelSubscriptions);

    private async Task RunSubscriptionAsync(string webhookId, Task registered, CancellationToken ct)
    {
        await registered;
        try
        {
            await _slots.WaitAsync(ct);
            try
            {
                await DeliverDueAsync(webhookId, ct);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // stopping: an attempt cut short is not recorded and goes again after the restart, with the same webhook-id
        }
        catch (Exception e)
        {
            log.LogError(e, "Delivering the webhooks of subscription {Webhook} failed; again in {Wait}", webhookId, RetryAfterError);
            try { await Task.Delay(RetryAfterError, Clock, ct); } // not at once: a full disk would repeat the same delivery in a tight loop
            catch (OperationCanceledException) { }
        }
        finally
        {
            _passPending = true; // before this loop leaves _running (see IdleUntil)
            _running.TryRemove(webhookId, out _);
            _passPending = true; // again: a pass that started in between cleared it, and the pass this wakes is still to come
            if (!ct.IsCancellationRequested)
                Wake();
        }
    }

    /// <summary>One subscription's due events until none is due (a failed one waits its backoff, so this ends).</summary>
    private async Task DeliverDueAsync(string webhookId, CancellationToken ct)
    {
        while (true)
        {
            List<DeliveryRow> due;
            await using (var c = await db.OpenAsync(ct))
                due = (await c.QueryAsync<DeliveryRow>(new CommandDefinition(Due,
                    new { Now = Time.ToMs(Clock.GetUtcNow()), WebhookId = webhookId }, cancellationToken: ct))).AsList();
            if (due.Count == 0)
                return;
            // One attempt per message per round keeps each message's events in order.
            foreach (var d in due.DistinctBy(d => d.MessageId))
                await AttemptAsync(d, ct);
        }
    }

    private async Task AttemptAsync(DeliveryRow d, CancellationToken ct)
    {
        var now = Clock.GetUtcNow();
        var timestamp = now.ToUnixTimeSeconds();
        int? status = null;
        string? error = null;
        try
        {
            // Rows stored before the guard existed are checked too; the connection itself is checked in ConnectAsync.
            if (WebhookTargetGuard.UrlProblem(d.Url, out _) is { } problem)
                throw new WebhookTargetRefusedException(problem);
            using var request = new HttpRequestMessage(HttpMethod.Post, d.Url) { Content = new StringContent(d.Payload, Encoding.UTF8, "application/json") };
            request.Headers.Add("webhook-id", d.EventId);
            request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add("webhook-signature", WebhookSignature.Sign(d.Secret, d.EventId, timestamp, d.Payload));
            request.Headers.UserAgent.ParseAdd("LineAgent-Webhooks/1");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(options.Value.Timeout);
            using var response = await Http().SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
                error = $"HTTP {status} {response.ReasonPhrase}{(status is >= 300 and < 400 ? " (redirects are not followed)" : "")}";
        }
        catch (WebhookTargetRefusedException e)
        {
            error = e.Message;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            error = $"no answer within {options.Value.Timeout.TotalSeconds:0} s";
        }
        catch (HttpRequestException e)
        {
            error = e.InnerException is WebhookTargetRefusedException refused ? refused.Message : e.Message;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Anything else (a secret that does not decode, ...) is a failed attempt too: recorded, retried with backoff,
            // given up in the end, instead of blocking the subscription's later events for good.
            error = $"{e.GetType().Name}: {e.Message}";
        }

        var attempts = d.Attempts + 1;
        var after = Clock.GetUtcNow();
        // The attempt happened: its result is written even when the agent is stopping (else it would be sent again).
        await using var c = await db.OpenAsync(CancellationToken.None);
        if (error is null)
        {
            await c.ExecuteAsync(new CommandDefinition("""
                UPDATE webhook_deliveries SET status = 'delivered', attempts = @Attempts, last_attempt_at = @Now, last_status = @Status,
                    last_error = NULL, delivered_at = @Now WHERE id = @Id
                """, new { d.Id, Attempts = attempts, Now = Time.ToMs(after), Status = status }, cancellationToken: CancellationToken.None));
            return;
        }
        // Both: past GiveUpAfter, and tried through the whole backoff series. An event that waited days behind an earlier
        // one of its message (order is kept) used to be given up at its first failure.
        var giveUp = after - Time.FromMs(d.CreatedAt) >= options.Value.GiveUpAfter && attempts >= Backoff.Length;
        await c.ExecuteAsync(new CommandDefinition("""
            UPDATE webhook_deliveries SET status = @State, attempts = @Attempts, last_attempt_at = @Now, last_status = @Status,
                last_error = @Error, next_attempt_at = @Next WHERE id = @Id
            """, new
        {
            d.Id, State = giveUp ? "failed" : "pending", Attempts = attempts, Now = Time.ToMs(after), Status = status, Error = error,
            Next = Time.ToMs(after + BackoffFor(attempts)),
        }, cancellationToken: CancellationToken.None));
        log.LogInformation("Webhook {Event} to {Url} failed ({Error}); {What}", d.EventId, WebhookTargetGuard.ForLog(d.Url), error,
            giveUp ? "given up" : $"retry in {BackoffFor(attempts)}");
    }

    public override void Dispose()
    {
        _http?.Dispose();
        base.Dispose();
    }
}
