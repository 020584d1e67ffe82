using System.Reflection;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace LineAgent.Storage;

/// <summary>
/// A statement the writer runs for every message (the INSERT of a row, of its event): prepared once on the writer's
/// connection and bound by position straight from the row's properties. Through <see cref="SqliteCommand"/> each run
/// looked every parameter up by name (a UTF-8 copy of the name and a search of the statement's parameter list),
/// boxed every value and read every property by reflection: measured, most of the writer's time for a 10,000-lead bulk.
/// Runs inside the writer's open transaction (the same connection); errors surface as <see cref="SqliteException"/>
/// with SQLite's codes, as a command's do. Writer thread only.
/// <para>
/// With <c>rowsPer</c> above 1 the statement is an INSERT whose VALUES row is repeated that many times, each copy bound from
/// its own row (<see cref="ExecuteRows{T}"/>): one run of the statement opens the table's and every index's cursor once for
/// all of them. Measured on the messages table (10,000 rows, 25 per statement): 222 → 153 ms, most of a row's own cost
/// being the statement's start (a cursor on the table and on each of its indexes, each sought from the root).
/// </para>
/// </summary>
public sealed partial class WriterStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _stmt;
    private object? _binder; // the binders of the row type the statement was first run with
    // The single row's parameter names by index (1-based; [0] unused): what each copy of the row binds.
    private readonly string[] _names;

    internal WriterStatement(SqliteConnection connection, string sql, int rowsPer = 1)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The writer's connection is not open.");
        if (rowsPer < 1)
            throw new ArgumentOutOfRangeException(nameof(rowsPer), rowsPer, "At least one row per statement.");
        Sql = sql;
        RowsPer = rowsPer;
        var single = Prepare(sql);
        _names = new string[raw.sqlite3_bind_parameter_count(single) + 1];
        for (var i = 1; i < _names.Length; i++)
            _names[i] = raw.sqlite3_bind_parameter_name(single, i).utf8_to_string()
                ?? throw new InvalidOperationException($"Parameter {i} has no name (use @Name for a row's property) in: {Sql}");
        if (rowsPer == 1)
        {
            _stmt = single;
            return;
        }
        try
        {
            // VALUES (@A, @B, ...) once per row, each copy's @Name numbered ?N: row k's copy of parameter i is ?(k * count + i).
            var values = sql.LastIndexOf("VALUES", StringComparison.OrdinalIgnoreCase);
            var tuple = values < 0 ? "" : sql[(values + "VALUES".Length)..].Trim();
            if (!sql.TrimStart().StartsWith("INSERT", StringComparison.OrdinalIgnoreCase) || !tuple.StartsWith('(') || !tuple.EndsWith(')'))
                throw new ArgumentException($"Several rows per statement need an INSERT ... VALUES (...) with nothing after the row: {sql}", nameof(sql));
            var count = _names.Length - 1;
            var rows = Enumerable.Range(0, rowsPer).Select(k => ParameterName().Replace(tuple, m =>
            {
                var i = raw.sqlite3_bind_parameter_index(single, m.Value);
                return i > 0 ? $"?{k * count + i}" : throw new InvalidOperationException($"{m.Value} is not a parameter of: {sql}");
            }));
            _stmt = Prepare($"{sql[..(values + "VALUES".Length)]} {string.Join(", ", rows)}");
        }
        finally
        {
            if (rowsPer > 1)
                single.Dispose();
        }
    }

    private sqlite3_stmt Prepare(string sql)
    {
        var rc = raw.sqlite3_prepare_v2(_db, sql, out var stmt, out var tail);
        if (rc != raw.SQLITE_OK)
            throw Error(rc);
        if (!string.IsNullOrWhiteSpace(tail))
        {
            stmt.Dispose();
            throw new ArgumentException($"One statement only; this SQL goes on after the first: {tail}", nameof(sql));
        }
        return stmt;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"[@:$][A-Za-z_][A-Za-z0-9_]*")]
    private static partial System.Text.RegularExpressions.Regex ParameterName();

    public string Sql { get; }

    /// <summary>Rows that one run of the statement inserts (<see cref="ExecuteRows{T}"/>); 1 for a statement of one row.</summary>
    public int RowsPer { get; }

    /// <summary>Binds every parameter of the statement from <paramref name="row"/>'s property of the same name (<c>@Id</c> ← Id), then runs it once.</summary>
    public int Execute<T>(T row)
    {
        if (RowsPer != 1)
            throw new InvalidOperationException($"This statement inserts {RowsPer} rows at a time: ExecuteRows.");
        var bind = Binders<T>();
        for (var i = 1; i < bind.Length; i++)
            bind[i](this, i, row);
        return Step();
    }

    /// <summary>Inserts <see cref="RowsPer"/> rows of <paramref name="rows"/> from <paramref name="start"/> in one run of the statement.</summary>
    public int ExecuteRows<T>(IReadOnlyList<T> rows, int start)
    {
        if (start < 0 || start + RowsPer > rows.Count)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"{RowsPer} rows from {start} of {rows.Count}.");
        var bind = Binders<T>();
        var count = bind.Length - 1;
        for (var k = 0; k < RowsPer; k++)
        {
            var row = rows[start + k];
            for (var i = 1; i <= count; i++)
                bind[i](this, k * count + i, row);
        }
        return Step();
    }

    private Action<WriterStatement, int, T>[] Binders<T>()
    {
        EnsureHeld();
        return _binder as Action<WriterStatement, int, T>[] ?? (Action<WriterStatement, int, T>[])(_binder = CompileBinders<T>());
    }

    private int Step()
    {
        try
        {
            var rc = raw.sqlite3_step(_stmt);
            if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
                throw Error(rc);
            return raw.sqlite3_changes(_db);
        }
        finally
        {
            // A statement left active would keep its read of the database open past the transaction.
            raw.sqlite3_reset(_stmt);
        }
    }

    public void Dispose() => _stmt.Dispose();

    private SqliteException Error(int rc) =>
        new($"SQLite Error {rc}: '{raw.sqlite3_errmsg(_db).utf8_to_string()}'.", rc, raw.sqlite3_extended_errcode(_db));

    /// <summary>
    /// One delegate per parameter of the row and row type ([0] unused): bind_text16 / bind_int64 / bind_null at the index it
    /// is given, no boxing. Each is its property's getter (an open delegate to the get method) feeding the typed bind: no
    /// expression tree is compiled (measured: compiling them touched a megabyte of System.Linq.Expressions and the JIT's code heap).
    /// </summary>
    private Action<WriterStatement, int, T>[] CompileBinders<T>()
    {
        var binders = new Action<WriterStatement, int, T>[_names.Length];
        for (var i = 1; i < _names.Length; i++)
        {
            var name = _names[i];
            var property = typeof(T).GetProperty(name.TrimStart('@', ':', '$'), BindingFlags.Public | BindingFlags.Instance)
                ?? throw new InvalidOperationException($"{typeof(T).Name} has no property for {name} in: {Sql}");
            binders[i] = Binder<T>(property)
                ?? throw new InvalidOperationException($"{typeof(T).Name}.{property.Name}: {property.PropertyType.Name} is not a column type the writer binds.");
        }
        return binders;
    }

    private static Action<WriterStatement, int, T>? Binder<T>(PropertyInfo property)
    {
        var type = property.PropertyType;
        if (type == typeof(string)) return Bind<T, string?>(property, static (s, i, v) => s.BindText(i, v));
        if (type == typeof(long)) return Bind<T, long>(property, static (s, i, v) => s.BindInteger(i, v));
        if (type == typeof(long?)) return Bind<T, long?>(property, static (s, i, v) => s.BindInteger(i, v));
        if (type == typeof(int)) return Bind<T, int>(property, static (s, i, v) => s.BindInteger(i, v));
        if (type == typeof(int?)) return Bind<T, int?>(property, static (s, i, v) => s.BindInteger(i, v));
        if (type == typeof(bool)) return Bind<T, bool>(property, static (s, i, v) => s.BindInteger(i, v ? 1 : 0));
        return null;
    }

    private static Action<WriterStatement, int, T> Bind<T, TValue>(PropertyInfo property, Action<WriterStatement, int, TValue> bind)
    {
        if (typeof(T).IsValueType || property.GetMethod is not { IsStatic: false } getter)
            throw new InvalidOperationException($"{typeof(T).Name}.{property.Name}: the writer binds readable properties of classes.");
        var get = getter.CreateDelegate<Func<T, TValue>>();
        return (statement, i, row) => bind(statement, i, get(row));
    }

    // What each parameter holds now. SQLite keeps a statement's bindings across runs (sqlite3_reset leaves them), so a
    // value the parameter already holds is not bound again: a bulk's rows share their line, batch, type, status, times
    // and NULLs, and binding only what differs saves most of the calls into SQLite (each one a P/Invoke with its handle
    // counted up and down). Text counts as the same only as the same string object (a copy is bound again). The held
    // strings stay referenced until the parameter takes another value: for a 25-row INSERT, up to 25 rows' texts.
    private enum Held : byte { Unknown, Null, Text, Integer }
    private Held[]? _held;
    private string?[]? _heldText;
    private long[]? _heldInteger;

    private void EnsureHeld()
    {
        if (_held is not null)
            return;
        var count = raw.sqlite3_bind_parameter_count(_stmt) + 1;
        (_held, _heldText, _heldInteger) = (new Held[count], new string?[count], new long[count]);
    }

    private void BindText(int i, string? value)
    {
        if (value is null)
        {
            BindNull(i);
            return;
        }
        if (_held![i] == Held.Text && ReferenceEquals(_heldText![i], value))
            return;
        _held[i] = Held.Unknown;
        // SQLite binds a null pointer as NULL and an empty span may pin to one: "" goes through the zero-terminated overload.
        Check(value.Length == 0 ? raw.sqlite3_bind_text(_stmt, i, "") : raw.sqlite3_bind_text16(_stmt, i, value.AsSpan()));
        (_held[i], _heldText![i]) = (Held.Text, value);
    }

    private void BindInteger(int i, long? value)
    {
        if (value is not { } v)
        {
            BindNull(i);
            return;
        }
        if (_held![i] == Held.Integer && _heldInteger![i] == v)
            return;
        _held[i] = Held.Unknown;
        Check(raw.sqlite3_bind_int64(_stmt, i, v));
        (_held[i], _heldInteger![i], _heldText![i]) = (Held.Integer, v, null);
    }

    private void BindNull(int i)
    {
        if (_held![i] == Held.Null)
            return;
        _held[i] = Held.Unknown;
        Check(raw.sqlite3_bind_null(_stmt, i));
        (_held[i], _heldText![i]) = (Held.Null, null);
    }

    private static void Check(int rc)
    {
        // Binding fails only on a misuse (an index out of range, too big a value): a bug, not a storage fault.
        if (rc != raw.SQLITE_OK)
            throw new SqliteException($"SQLite could not bind a parameter (error {rc}).", rc);
    }
}
