using LineAgent.Hosting;
using LineAgent.Scheduling;

namespace LineAgent.Storage;

/// <summary>
/// The exit code `lineagent run` ends with: 0 for a stop, <see cref="DatabaseGone"/> when the agent stopped itself because its
/// database went away under it (launchd restarts an agent that exits non-zero).
/// </summary>
public sealed class AgentExit
{
    /// <summary>EX_TEMPFAIL: the next start works on the data directory as it is then.</summary>
    public const int DatabaseGone = 75;

    public int Code { get; set; }
}

/// <summary>
/// Watches that lineagent.db is still where the agent opened it. Deleted under a running agent (the data directory removed to
/// start afresh, by hand or by a clean-up tool), the agent went on with the deleted file, still open: it answered 201 to
/// sends that no later start would find, said storage "ok", and a second agent could start on a new database in the same
/// place, one API then reading both (probe M). It now stops itself within two checks (<see cref="Every"/> apart), exit 75:
/// launchd starts it again, on the data directory as it is then. A file put in its place (a `mv`) is not seen: .NET has
/// no portable way to compare the file opened with the one at the path.
/// </summary>
public sealed class DataDirWatch(DataDirectory dir, AgentExit exit, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<DataDirWatch> log)
    : WorkerLoop(time, log)
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(2);

    protected override TimeSpan RetryAfterError => Every;

    private int _missed;

    protected override Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        // Not while the agent stops anyway (review: a data directory removed after `launchctl kill TERM`, while the sends in
        // flight drain, turned that stop's exit 0 into 75, and launchd started an agent the user had stopped).
        if (lifetime.ApplicationStopping.IsCancellationRequested)
            return Task.FromResult(DateTimeOffset.MaxValue);
        // Gone, or made again empty under the same name (review: only lineagent.db deleted, a new pooled connection re-creates
        // it, 0 bytes while its pages are in the -wal). Twice in a row: a stat that fails once (a network volume) is not a
        // deletion.
        var file = new FileInfo(dir.Database);
        _missed = file is { Exists: true, Length: > 0 } ? 0 : _missed + 1;
        if (_missed >= 2)
        {
            log.LogCritical("{Path} was deleted (or its data directory) while the agent ran: what it accepts now would be lost. " +
                            "It stops (exit {Code}); launchd starts it again on the data directory as it is now (a new database if there is none)",
                dir.Database, AgentExit.DatabaseGone);
            exit.Code = AgentExit.DatabaseGone;
            lifetime.StopApplication();
            return Task.FromResult(DateTimeOffset.MaxValue);
        }
        return Task.FromResult(Clock.GetUtcNow() + Every);
    }
}
