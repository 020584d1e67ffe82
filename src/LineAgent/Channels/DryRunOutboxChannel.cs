using System.Text.Json;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using Microsoft.Extensions.Options;

namespace LineAgent.Channels;

/// <summary>
/// Agent:DryRun: every send becomes one JSON file in &lt;data dir&gt;/outbox. The file appears by an
/// atomic rename, so its presence is the proof of the hand-off and its absence proves non-delivery. The file is synced
/// before the rename and the directory after it (shared by the sends in flight), so both hold after a power loss too.
/// File names carry the attempt's claim, so a second hand-off of one message would show as a second file.
/// </summary>
public sealed class DryRunOutboxChannel(DataDirectory dataDir, IOptions<AgentOptions> options, TimeProvider time,
    ILogger<DryRunOutboxChannel>? log = null, Storage.StorageHealth? storage = null) : IMessageChannel, IDisposable
{
    private readonly Storage.SharedDirectorySync _outboxSync = new(dataDir.Outbox);
    // The file work blocks in fsync: on threads of its own, as many as sends may run at once (Capabilities.ParallelSends).
    private readonly Storage.BlockingFileWork _files = new("LineAgent outbox", Math.Max(1, options.Value.DryRunParallelSends));

    public const string ChannelName = "dry-run";
    private static readonly JsonSerializerOptions Json = new(Api.AgentJson.Options)
    {
        WriteIndented = true,
        // A file for people to read: keep "+", quotes and non-ASCII as they are.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string Name => ChannelName;

    public ChannelCapabilities Capabilities { get; } = new(IsDryRun: true, ParallelSends: options.Value.DryRunParallelSends);

    public string OutboxDir => dataDir.Outbox;

    public bool Handles(LineOptions line, string type) => options.Value.DryRun;

    public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
    {
        var delay = options.Value.DryRunSendDelay;
        if (delay > TimeSpan.Zero)
            await Task.Delay(delay, time, ct);

        var m = request.Message;
        var at = time.GetUtcNow();
        var file = Path.Combine(OutboxDir, $"{m.Id}.{ClaimSuffix(request.Claim)}.json");
        var temp = Path.Combine(OutboxDir, $".{m.Id}.{Guid.NewGuid():N}.tmp");
        var record = new
        {
            id = m.Id, type = m.Type, lineId = m.LineId, to = m.Recipient, recipientName = m.RecipientName,
            subject = m.Subject, content = m.Content, scheduledAt = Storage.Time.FromMs(m.ScheduledAt),
            handedAt = at, claim = request.Claim, dryRun = true,
        };
        try
        {
            if (!Directory.Exists(OutboxDir))
            {
                // A new outbox folder's own name is durable only once the data dir is synced.
                Directory.CreateDirectory(OutboxDir);
                await SyncAsync(() => { Storage.DirectorySync.Flush(dataDir.Root); return Task.CompletedTask; }, "the data directory");
            }
            var bytes = JsonSerializer.SerializeToUtf8Bytes(record, Json);
            await _files.RunAsync(() =>
            {
                // One fsync makes the file durable before the rename gives it its name. (It was also opened O_SYNC, which
                // synced each write before that fsync: in 16 alternating rounds of 1,000 files, 16 at a time, without it
                // 14 were faster, by 20-30 % of the disk's time while the disk was quiet.)
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
                {
                    stream.Write(bytes);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, file);
                return true;
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing was "sent": the file is the send. No half-written file is left behind; the message waits.
            try { File.Delete(temp); } catch (Exception ce) when (ce is IOException or UnauthorizedAccessException) { }
            // A full or read-only disk stops every send: /api/status and the menu bar say so (not the database's "ok").
            storage?.ReportOutbox(e);
            return new SendOutcome.Deferred($"the outbox could not be written: {e.Message}", TimeSpan.FromSeconds(30));
        }
        storage?.ReportOutboxSuccess();
        // The name itself is durable only once the directory is synced; without it a power loss could leave a message
        // recorded as sent with no file, or lose a file that reconcile then reads as "not sent".
        await SyncAsync(() => _outboxSync.FlushAsync(CancellationToken.None), $"the outbox after {Path.GetFileName(file)}");
        return new SendOutcome.Sent($"outbox/{Path.GetFileName(file)}", at);
    }

    /// <summary>A directory sync whose failure is said, not thrown: the file is in place, so it was sent; only its durability
    /// across a power loss is not confirmed.</summary>
    private async Task SyncAsync(Func<Task> sync, string what)
    {
        try
        {
            await sync();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            log?.LogWarning("Could not sync {What} to disk: {Error}", what, e.Message);
        }
    }

    public void Dispose() => _files.Dispose();

    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct)
    {
        // A temp file the crash left before its rename is no send: removed, or each such crash left one for good (probe).
        if (Directory.Exists(OutboxDir))
            foreach (var temp in Directory.EnumerateFiles(OutboxDir, $".{request.Message.Id}.*.tmp"))
            {
                try { File.Delete(temp); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log?.LogWarning("Could not remove {Temp}: {Error}", temp, e.Message); }
            }
        var found = FilesFor(request.Message.Id).FirstOrDefault();
        ReconcileOutcome outcome = found is null
            ? new ReconcileOutcome.NotSent()
            : new ReconcileOutcome.Sent($"outbox/{Path.GetFileName(found)}", File.GetLastWriteTimeUtc(found));
        return Task.FromResult(outcome);
    }

    public IEnumerable<string> FilesFor(string messageId) =>
        Directory.Exists(OutboxDir) ? Directory.EnumerateFiles(OutboxDir, messageId + ".*.json") : [];

    public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct)
    {
        // While the outbox is refused, each health check (the status the menu bar asks for every 30 s) tries a small file:
        // with room again the state clears now, not only at the next send (which may be hours away).
        if (storage?.OutboxState is { State: not Storage.StorageState.Ok } && OutboxTakesAFile() is { } refused)
            return Task.FromResult(new ChannelHealth(Name, ChannelHealth.Unavailable, $"dry run: the outbox cannot be written, so nothing is sent: {refused}"));
        return Task.FromResult(new ChannelHealth(Name, ChannelHealth.Ok, $"dry run: sends are written to {OutboxDir}"));
    }

    /// <summary>Writes and removes a 4 KB file in the outbox; null when that worked (and the refusal is cleared), else why not.</summary>
    private string? OutboxTakesAFile()
    {
        var probe = Path.Combine(OutboxDir, $".probe-{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
            {
                stream.Write(new byte[4096]);
                stream.Flush(flushToDisk: true);
            }
            File.Delete(probe);
            storage?.ReportOutboxSuccess();
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(probe); } catch (Exception ce) when (ce is IOException or UnauthorizedAccessException) { }
            storage?.ReportOutbox(e);
            return e.Message;
        }
    }

    private static string ClaimSuffix(string claim) => claim.Length <= 12 ? claim : claim[^12..];
}
