using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>What the agent's storage can do right now, as /api/status, the menu bar and doctor show it.</summary>
public sealed record StorageState(string State, DateTimeOffset? Since, string? Detail)
{
    public const string Ok = "ok";
    public const string Full = "full";
    public const string ReadOnly = "read_only";
    /// <summary>Writes fail with an I/O error (a read-only remount, a failing disk).</summary>
    public const string Error = "error";

    /// <summary>The problem `code` an API answer carries for this state; none while storage is fine.</summary>
    public string? Code => State switch { Ok => null, Full => "storage_full", ReadOnly => "storage_read_only", _ => "storage_error" };
}

/// <summary>
/// Knows whether the last write failed because the disk is full or the data dir is read-only, and since when;
/// the next write that succeeds clears it (the agent recovers by itself when space returns).
/// </summary>
public sealed class StorageHealth(TimeProvider time)
{
    private static readonly StorageState Fine = new(StorageState.Ok, null, null);
    private volatile StorageState _state = Fine;
    // The dry-run outbox, in the data dir too: a full disk can refuse its files while the database still has room in its
    // WAL, and the database's next good write must not clear what stops every send. Cleared by the next file written.
    private volatile StorageState _outbox = Fine;

    /// <summary>The database's state; while that is fine, the outbox's.</summary>
    public StorageState State => _state.State != StorageState.Ok ? _state : _outbox;

    public bool IsHealthy => State.State == StorageState.Ok;

    /// <summary>The dry-run outbox's own state (the line's channel health shows it).</summary>
    public StorageState OutboxState => _outbox;

    /// <summary>The storage fault behind <paramref name="e"/> (full, read-only, an I/O error, the database deleted), or null for any other error.</summary>
    public static string? FaultOf(Exception e) => e switch
    {
        _ when DatabasePresence.IsGone(e) => StorageState.Error,                   // before the others: the guard's refusal is a SQLITE_CONSTRAINT
        SqliteException { SqliteErrorCode: 13 } => StorageState.Full,            // SQLITE_FULL
        SqliteException { SqliteErrorCode: 8 } => StorageState.ReadOnly,         // SQLITE_READONLY
        SqliteException { SqliteErrorCode: 10 } => StorageState.Error,           // SQLITE_IOERR (EROFS after a remount, EIO)
        SqliteException { SqliteErrorCode: 11 or 26 } => StorageState.Error,     // SQLITE_CORRUPT, SQLITE_NOTADB: damaged while running
        IOException io when io.HResult is 28 or unchecked((int)0x80070070) || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) => StorageState.Full,
        IOException io when io.HResult is 30 || io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase) => StorageState.ReadOnly,
        UnauthorizedAccessException => StorageState.ReadOnly,
        _ when e.InnerException is { } inner => FaultOf(inner),
        _ => null,
    };

    public void Report(Exception e)
    {
        if (FaultOf(e) is not { } fault)
            return;
        var current = _state;
        if (current.State != fault)
            _state = new StorageState(fault, time.GetUtcNow(), e.Message);
    }

    public void ReportSuccess()
    {
        if (_state.State != StorageState.Ok)
            _state = Fine;
    }

    /// <summary>The dry-run outbox could not take a file (<paramref name="e"/>): sends wait until it can.</summary>
    public void ReportOutbox(Exception e)
    {
        if (FaultOf(e) is not { } fault)
            return;
        if (_outbox.State != fault)
            _outbox = new StorageState(fault, time.GetUtcNow(), $"the dry-run outbox cannot be written, so nothing is sent: {e.Message}");
    }

    public void ReportOutboxSuccess()
    {
        if (_outbox.State != StorageState.Ok)
            _outbox = Fine;
    }
}
