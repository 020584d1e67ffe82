using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>The readable public properties of a parameter object, as (@Name, getter), once per type.</summary>
internal static class BoundProperties
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, (string Name, Func<object, object?> Get)[]> Cache = new();

    public static (string Name, Func<object, object?> Get)[] Of(Type type) => Cache.GetOrAdd(type, static t =>
        t.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => p.GetMethod is not null && p.GetIndexParameters().Length == 0)
            .Select(p => ("@" + p.Name, (Func<object, object?>)p.GetValue))
            .ToArray());
}

/// <summary>What a unit of work sees inside the writer's transaction.</summary>
public sealed class WriteScope
{
    private readonly List<Action> _afterCommit = [];
    private readonly Dictionary<string, SqliteCommand> _prepared;
    private readonly Dictionary<string, WriterStatement> _statements;

    internal WriteScope(SqliteConnection connection, SqliteTransaction transaction, Dictionary<string, SqliteCommand> prepared,
        Dictionary<string, WriterStatement> statements)
    {
        Connection = connection;
        Transaction = transaction;
        _prepared = prepared;
        _statements = statements;
    }

    public SqliteConnection Connection { get; }
    public SqliteTransaction Transaction { get; }

    /// <summary>Runs once the transaction that holds this work is on disk (never when it is rolled back).</summary>
    public void AfterCommit(Action action) => _afterCommit.Add(action);

    /// <summary>
    /// A command for <paramref name="sql"/> prepared once on the writer's connection and reused by every later
    /// transaction: a 30-column INSERT is parsed once per agent run, not once per message.
    /// </summary>
    public SqliteCommand Prepared(string sql)
    {
        if (!_prepared.TryGetValue(sql, out var cmd))
        {
            cmd = Connection.CreateCommand();
            cmd.CommandText = sql;
            _prepared[sql] = cmd;
        }
        cmd.Transaction = Transaction;
        return cmd;
    }

    /// <summary>
    /// <see cref="Prepared"/> with its parameters set from the public properties of <paramref name="parameters"/> (an
    /// anonymous object, as for Dapper: <c>@Id</c> ← Id; null as NULL), for a constant statement that runs for every
    /// message (a transition's UPDATE ... RETURNING). Through Dapper each run made a new command, which SQLite compiled
    /// again (a claim's UPDATE with its triggers): measured, most of the writer's time in a burst of due messages.
    /// Scalar values only: a list (Dapper's <c>IN @Ids</c>) is refused.
    /// </summary>
    public SqliteCommand Bound(string sql, object parameters)
    {
        var cmd = Prepared(sql);
        var properties = BoundProperties.Of(parameters.GetType());
        // Only this object's values: a parameter left from a call with another object would be bound unseen.
        if (cmd.Parameters.Count != properties.Length || !properties.All(p => cmd.Parameters.Contains(p.Name)))
        {
            cmd.Parameters.Clear();
            foreach (var (name, _) in properties)
                cmd.Parameters.Add(new SqliteParameter { ParameterName = name });
        }
        foreach (var (name, get) in properties)
        {
            var value = get(parameters);
            if (value is System.Collections.IEnumerable and not string and not byte[])
                throw new ArgumentException($"{name} is a list; a prepared writer statement binds single values.", nameof(parameters));
            cmd.Parameters[name].Value = value ?? DBNull.Value;
        }
        return cmd;
    }

    /// <summary>
    /// The statement for <paramref name="sql"/> (a constant), prepared once on the writer's connection and bound by
    /// position from a row's properties: for the statements that run once per message.
    /// </summary>
    public WriterStatement Statement(string sql)
    {
        if (!_statements.TryGetValue(sql, out var statement))
            _statements[sql] = statement = new WriterStatement(Connection, sql);
        return statement;
    }

    /// <summary>As <see cref="Statement(string)"/> for an INSERT of <paramref name="rowsPer"/> rows at a time (<see cref="WriterStatement.ExecuteRows{T}"/>).</summary>
    public WriterStatement Statement(string sql, int rowsPer)
    {
        if (rowsPer == 1)
            return Statement(sql);
        var key = $"{rowsPer} rows\0{sql}";
        if (!_statements.TryGetValue(key, out var statement))
            _statements[key] = statement = new WriterStatement(Connection, sql, rowsPer);
        return statement;
    }

    private Dictionary<DeferredWork, int>? _owed;
    private List<DeferredWork>? _paid;

    /// <summary>This transaction leaves <paramref name="rows"/> rows of <paramref name="work"/> to do later (see <see cref="DeferredWork"/>).</summary>
    public void Owe(DeferredWork work, int rows)
    {
        _owed ??= [];
        _owed[work] = _owed.GetValueOrDefault(work) + rows;
    }

    /// <summary>Does everything owed of <paramref name="work"/> now; once this transaction commits, nothing of it is owed.</summary>
    internal void PayNow(DeferredWork work)
    {
        work.Run(this);
        (_paid ??= []).Add(work);
    }

    internal IReadOnlyDictionary<DeferredWork, int>? Owed => _owed;
    internal IReadOnlyList<DeferredWork>? Paid => _paid;

    internal List<Action> TakeAfterCommit()
    {
        var actions = _afterCommit.ToList();
        _afterCommit.Clear();
        return actions;
    }

    internal void DiscardAfterCommit() => _afterCommit.Clear();
}

/// <summary>
/// The one writer of the agent's message state, with group commit: requests and workers hand it units of
/// work; it runs whatever has arrived together in ONE transaction on its own connection (should one unit throw,
/// the group runs again with a savepoint per unit, so one failure does not undo the others), commits once (synchronous=FULL: on disk before
/// anyone is answered), then completes each caller and runs their after-commit actions in order. One
/// writer also means no two of our own transactions ever wait on each other's lock. Upkeep that can wait
/// (<see cref="DeferredWork"/>: the search index) it does in batches of its own.
/// </summary>
public sealed class DbWriter : IAsyncDisposable
{
    /// <summary>The most units one transaction takes; the rest wait for the next.</summary>
    public const int MaxGroup = 256;

    private readonly Db _db;
    private readonly ILogger<DbWriter> _log;
    private readonly StorageHealth? _storage;
    // Synchronous continuations: a unit written while the writer waits completes its wait on the writing thread (the
    // continuation only sets the task the writer blocks on), instead of through a thread-pool thread first; measured
    // under the POST load, three runs each alternating: 12,171-12,400 req/s against 11,471-12,005.
    private readonly Channel<Work> _queue = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly Thread _thread;
    private SqliteConnection? _connection;
    private readonly Dictionary<string, SqliteCommand> _prepared = [];
    private readonly Dictionary<string, WriterStatement> _statements = [];
    private long _commits, _units;
    // Deferred upkeep owed (writer thread only), and its total for readers on other threads (CatchUpAsync).
    private readonly Dictionary<DeferredWork, int> _owed = [];
    private int _owedRows;
    private long _retryOwedAt;
    private bool _owedFailing;
    private readonly TimeSpan _deferFor;
    private int _deferring;

    public DbWriter(Db db, ILogger<DbWriter> log, StorageHealth? storage = null, TimeSpan? deferFor = null)
    {
        _db = db;
        _deferFor = deferFor ?? DeferFor;
        if (_deferFor < TimeSpan.Zero || _deferFor > TimeSpan.FromDays(1))
            throw new ArgumentOutOfRangeException(nameof(deferFor), deferFor, "The deferral must be between 0 and 1 day.");
        _log = log;
        _storage = storage;
        // Its own thread: the writer's synchronous SQLite calls never hold a thread-pool thread, and it shows by name in a profile.
        _thread = new Thread(Run) { Name = "LineAgent writer", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Transactions committed and units of work written so far (units / commits = the mean group).</summary>
    public (long Commits, long Units) Counters => (Interlocked.Read(ref _commits), Interlocked.Read(ref _units));

    /// <summary>
    /// Runs <paramref name="work"/> inside the writer's next transaction and returns its result once that
    /// transaction is committed. <paramref name="work"/> runs on the writer's thread: synchronous SQL only.
    /// A cancellation before the work started cancels it; once started it completes.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<WriteScope, T> work, CancellationToken ct = default) => WriteAsync(work, alone: false, ct);

    /// <summary>
    /// As <see cref="WriteAsync{T}(Func{WriteScope, T}, CancellationToken)"/>; with <paramref name="alone"/> the work gets a
    /// transaction of its own, without a savepoint. For large units (a 10,000-row bulk): inside a savepoint SQLite keeps
    /// every page the unit changes in the sub-journal, and truncating an in-memory sub-journal after each statement walks
    /// it from the start, so a large unit in a savepoint costs time quadratic in its size.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<WriteScope, T> work, bool alone, CancellationToken ct = default) =>
        Enqueue(new Work<T>(work, ct) { Alone = alone });

    /// <summary>How long a group of deferrable units alone waits for a unit that cannot wait, so both share a commit (the default;
    /// the constructor takes another for tests).</summary>
    public static readonly TimeSpan DeferFor = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// As <see cref="WriteAsync{T}(Func{WriteScope, T}, CancellationToken)"/> for a unit nobody is waiting on to go on
    /// (the outcome of a send that already went out): when only such units are waiting, the writer holds them up to
    /// <see cref="DeferFor"/> for the next unit that cannot wait (the line's next claim, a request), and commits them
    /// together: one synced commit instead of two. Not for anything that answers a request or precedes a send.
    /// </summary>
    public Task<T> WriteDeferrableAsync<T>(Func<WriteScope, T> work) => Enqueue(new Work<T>(work, CancellationToken.None) { Deferrable = true });

    /// <summary>Deferrable units the writer holds back right now, waiting for one that cannot wait (a test hook).</summary>
    public int Deferring => Volatile.Read(ref _deferring);

    private Task<T> Enqueue<T>(Work<T> item)
    {
        if (!_queue.Writer.TryWrite(item))
            throw new ObjectDisposedException(nameof(DbWriter));
        return item.Task;
    }

    private void Run()
    {
        var group = new List<Work>(MaxGroup);
        Work? held = null; // a unit that must run alone, read while a group was being gathered
        while (held is not null || WaitForWork())
        {
            group.Clear();
            if (held is not null)
            {
                group.Add(held);
                held = null;
            }
            Gather(group, ref held);
            // Only deferrable units (outcomes of sends that went out): wait a moment for one that cannot wait, to share its commit.
            var deadline = Stopwatch.GetTimestamp() + (long)(_deferFor.TotalSeconds * Stopwatch.Frequency);
            while (held is null && group.Count is > 0 and < MaxGroup && group.TrueForAll(w => w.Deferrable))
            {
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (left <= TimeSpan.Zero)
                    break;
                var more = _queue.Reader.WaitToReadAsync().AsTask();
                Volatile.Write(ref _deferring, group.Count);
                var arrived = more.Wait(left) && more.Result;
                Volatile.Write(ref _deferring, 0);
                if (!arrived)
                    break;
                Gather(group, ref held);
            }
            if (group.Count > 0)
                WriteGroup(group);
            PayOwed(onlyFullBatches: true);
        }
        PayOwed(onlyFullBatches: false);
    }

    /// <summary>Waits for the next unit; while deferred upkeep is owed, does it once nothing has arrived for its idle time.</summary>
    private bool WaitForWork()
    {
        var next = _queue.Reader.WaitToReadAsync().AsTask();
        while (_owed.Count > 0)
        {
            var idle = _owed.Keys.Min(w => w.Idle);
            var retryIn = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _retryOwedAt);
            if (next.Wait(retryIn > idle ? retryIn : idle))
                break;
            PayOwed(onlyFullBatches: false);
        }
        return next.GetAwaiter().GetResult();
    }

    /// <summary>
    /// Does the deferred upkeep that is owed (with <paramref name="onlyFullBatches"/>, only what has reached its batch) in a
    /// transaction of its own. When that fails (a full disk), it stays owed and is tried again after its idle time; the
    /// first failure is logged as a warning, the ones after it until a success only at debug level.
    /// </summary>
    private void PayOwed(bool onlyFullBatches)
    {
        if (_owed.Count == 0 || Stopwatch.GetTimestamp() < _retryOwedAt)
            return;
        var due = _owed.Where(o => !onlyFullBatches || o.Value >= o.Key.Batch).Select(o => o.Key).ToList();
        if (due.Count == 0)
            return;
        try
        {
            var connection = _connection ??= Open();
            using (var tx = connection.BeginTransaction(deferred: false))
            {
                var scope = new WriteScope(connection, tx, _prepared, _statements);
                foreach (var work in due)
                    work.Run(scope);
                tx.Commit();
            }
            foreach (var work in due)
                _owed.Remove(work);
            Volatile.Write(ref _owedRows, _owed.Values.Sum());
            // No ReportSuccess: a small index insert that fits would clear the "full" of a refused bulk a moment ago.
            if (_owedFailing)
                _log.LogInformation("Deferred upkeep ({Work}) done after earlier failures", string.Join(", ", due));
            _owedFailing = false;
        }
        catch (Exception e)
        {
            _log.Log(_owedFailing ? LogLevel.Debug : LogLevel.Warning, e,
                "Deferred upkeep ({Work}) failed; it stays owed and is tried again later", string.Join(", ", due));
            _owedFailing = true;
            _storage?.Report(e);
            _retryOwedAt = Stopwatch.GetTimestamp() + (long)(due.Min(w => w.Idle).TotalSeconds * Stopwatch.Frequency);
            ResetConnection();
        }
    }

    /// <summary>After a commit: what its units left owed, less what one of them did (<see cref="WriteScope.PayNow"/>).</summary>
    private void Settle(WriteScope scope)
    {
        if (scope.Owed is null && scope.Paid is null)
            return;
        foreach (var (work, rows) in scope.Owed ?? new Dictionary<DeferredWork, int>())
            _owed[work] = _owed.GetValueOrDefault(work) + rows;
        foreach (var work in scope.Paid ?? [])
            _owed.Remove(work);
        Volatile.Write(ref _owedRows, _owed.Values.Sum());
    }

    /// <summary>
    /// For a reader that needs <paramref name="work"/> done for every row committed so far (a search that must find a
    /// message answered a moment ago): when any is owed, does it in a transaction of its own (so a failure refuses only
    /// this, not the units it would have shared a commit with) and returns once that is committed; else at once.
    /// </summary>
    public Task CatchUpAsync(DeferredWork work, CancellationToken ct = default) =>
        Volatile.Read(ref _owedRows) == 0 ? Task.CompletedTask : WriteAsync(s => { s.PayNow(work); return true; }, alone: true, ct);

    /// <summary>Rows of deferred upkeep owed right now (a test hook).</summary>
    public int OwedRows => Volatile.Read(ref _owedRows);

    /// <summary>Adds what has arrived to <paramref name="group"/>; a unit that must run alone is held for the next group.</summary>
    private void Gather(List<Work> group, ref Work? held)
    {
        while (group.Count < MaxGroup && !(group.Count == 1 && group[0].Alone) && _queue.Reader.TryRead(out var item))
        {
            if (item.Cancelled())
                continue;
            if (item.Alone && group.Count > 0)
            {
                held = item;
                break;
            }
            group.Add(item);
        }
    }

    private void WriteGroup(List<Work> group)
    {
        List<Action> afterCommit = [];
        Exception? unitFault = null;
        try
        {
            var connection = _connection ??= Open();
            if (!WriteAllOrNothing(connection, group, afterCommit, out var refused))
            {
                // A group of one: the transaction was its savepoint (no sub-journal of everything it changes).
                if (group.Count == 1)
                {
                    group[0].Refused(refused!);
                    unitFault = refused;
                }
                else
                    unitFault = WriteWithSavepoints(connection, group, afterCommit);
            }
        }
        catch (Exception e)
        {
            // BEGIN or COMMIT failed (disk full, I/O error, a damaged file, or the database deleted under the agent: the commit
            // guard rolled it back, as it would have reached only the deleted file): nothing of this group is on disk.
            _log.LogError(e, "Writing a group of {Count} changes failed; none of them was stored", group.Count);
            _storage?.Report(e);
            foreach (var item in group)
                item.Fail(e);
            ResetConnection();
            return;
        }
        // A unit refused for the disk (full, read-only, I/O) says so in /api/status, although the others committed.
        if (unitFault is not null && StorageHealth.FaultOf(unitFault) is not null)
            _storage?.Report(unitFault);
        else if (!group.TrueForAll(w => w.IsRefused))
            _storage?.ReportSuccess(); // something was committed (units that were all refused wrote nothing)
        Interlocked.Increment(ref _commits);
        Interlocked.Add(ref _units, group.Count);
        foreach (var action in afterCommit)
        {
            try { action(); }
            catch (Exception e) { _log.LogError(e, "An after-commit action failed"); }
        }
        foreach (var item in group)
            item.Complete();
    }

    /// <summary>
    /// The usual case: every unit straight in one transaction. A savepoint per unit would make SQLite's FTS5 indexes
    /// flush what they hold as a new segment at each savepoint and then merge those segments (measured: most of the
    /// writer's time under load). False, with everything rolled back, when a unit threw (<paramref name="refused"/>): a
    /// group of one is then refused; a larger group runs again with a savepoint per unit (<see cref="WriteWithSavepoints"/>),
    /// so that unit alone is refused. Units only
    /// write through their scope, so running one again after a rollback is safe.
    /// </summary>
    private bool WriteAllOrNothing(SqliteConnection connection, List<Work> group, List<Action> afterCommit, out Exception? refused)
    {
        refused = null;
        using var tx = connection.BeginTransaction(deferred: false);
        var scope = new WriteScope(connection, tx, _prepared, _statements);
        foreach (var item in group)
        {
            try
            {
                item.Run(scope);
            }
            catch (Exception e)
            {
                tx.Rollback();
                scope.DiscardAfterCommit();
                refused = e;
                return false;
            }
        }
        afterCommit.AddRange(scope.TakeAfterCommit());
        tx.Commit();
        Settle(scope);
        return true;
    }

    /// <summary>
    /// Each unit in a savepoint, so one that throws is undone and refused while the others are committed. Returns a
    /// refusal that was a storage fault (else any refusal, else null), for the storage health.
    /// </summary>
    private Exception? WriteWithSavepoints(SqliteConnection connection, List<Work> group, List<Action> afterCommit)
    {
        Exception? fault = null;
        using var tx = connection.BeginTransaction(deferred: false);
        var scope = new WriteScope(connection, tx, _prepared, _statements);
        foreach (var item in group)
        {
            Execute(connection, tx, "SAVEPOINT unit");
            try
            {
                item.Run(scope);
                Execute(connection, tx, "RELEASE unit");
                afterCommit.AddRange(scope.TakeAfterCommit());
            }
            catch (Exception e)
            {
                Execute(connection, tx, "ROLLBACK TO unit; RELEASE unit");
                scope.DiscardAfterCommit();
                // Told after the commit: a caller that reacts by reading (a concurrent Idempotency-Key) must see the others' work.
                item.Refused(e);
                if (fault is null || (StorageHealth.FaultOf(fault) is null && StorageHealth.FaultOf(e) is not null))
                    fault = e;
            }
        }
        tx.Commit();
        Settle(scope);
        return fault;
    }

    private SqliteConnection Open()
    {
        // Not on a database deleted under the agent (its commits are refused, Db.GuardCommits): opening would make a new
        // empty file in its place.
        if (_db.GuardCommits)
            _db.Presence.EnsureThere();
        var connection = _db.Open();
        using var cmd = connection.CreateCommand();
        // An accepted request is on disk before it is answered; wait out another process's lock (a second agent's migration) inside SQLite.
        // Sub-journals in memory: a unit's savepoint journal is small (large units run alone, without a savepoint).
        // A 1 MB page cache holds what inserts touch (the right edge of each index); 16 MB only cost memory and
        // page-cache upkeep (bench, same evening: peak RSS 152-164 -> 147 MB, CPU per POST 0.27-0.32 -> 0.25-0.26 ms), and
        // 4 MB -> 1 MB took 3 MB off the peak with requests/s, the 10,000-lead bulk and the 1,000 due unchanged (2026-12-05).
        // The WAL's checkpoint threshold is every connection's (Db.WalCheckpointPages).
        cmd.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA cache_size=-1024; PRAGMA temp_store=MEMORY;";
        cmd.ExecuteNonQuery();
        return connection;
    }

    private void ResetConnection()
    {
        foreach (var cmd in _prepared.Values)
            cmd.Dispose();
        _prepared.Clear();
        foreach (var statement in _statements.Values)
            statement.Dispose();
        _statements.Clear();
        _connection?.Dispose();
        _connection = null;
    }

    private static void Execute(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        _thread.Join();
        ResetConnection();
        return ValueTask.CompletedTask;
    }

    private abstract class Work
    {
        /// <summary>Runs in a transaction of its own (see <see cref="WriteAsync{T}(Func{WriteScope, T}, bool, CancellationToken)"/>).</summary>
        public bool Alone { get; init; }
        /// <summary>May wait for the next unit that cannot (see <see cref="WriteDeferrableAsync{T}"/>).</summary>
        public bool Deferrable { get; init; }
        public abstract bool Cancelled();
        public abstract void Run(WriteScope scope);
        public abstract void Fail(Exception e);
        /// <summary>Its own work threw (rolled back to its savepoint); reported once the group is committed.</summary>
        public abstract void Refused(Exception e);
        /// <summary>Its own work threw and was undone: nothing of it reached the disk.</summary>
        public abstract bool IsRefused { get; }
        public abstract void Complete();
    }

    private sealed class Work<T>(Func<WriteScope, T> work, CancellationToken ct) : Work
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _ran;
        private bool _failed;
        private T? _result;

        public Task<T> Task => _done.Task;

        public override bool Cancelled()
        {
            if (!ct.IsCancellationRequested)
                return false;
            _done.TrySetCanceled(ct);
            return true;
        }

        public override void Run(WriteScope scope)
        {
            _result = work(scope);
            _ran = true;
        }

        private Exception? _refused;

        public override void Refused(Exception e) => _refused = e;
        public override bool IsRefused => _refused is not null;

        public override void Fail(Exception e)
        {
            _failed = true;
            _done.TrySetException(e);
        }

        public override void Complete()
        {
            if (_refused is not null)
                _done.TrySetException(_refused);
            else if (_ran && !_failed)
                _done.TrySetResult(_result!);
        }
    }
}
