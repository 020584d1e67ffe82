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
/// </summary>
public sealed class WriterStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _stmt;
    private Delegate? _binder;

    internal WriterStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The writer's connection is not open.");
        Sql = sql;
        var rc = raw.sqlite3_prepare_v2(_db, sql, out _stmt, out var tail);
        if (rc != raw.SQLITE_OK)
            throw Error(rc);
        if (!string.IsNullOrWhiteSpace(tail))
        {
            _stmt.Dispose();
            throw new ArgumentException($"One statement only; this SQL goes on after the first: {tail}", nameof(sql));
        }
    }

    public string Sql { get; }

    /// <summary>Binds every parameter of the statement from <paramref name="row"/>'s property of the same name (<c>@Id</c> ← Id), then runs it once.</summary>
    public int Execute<T>(T row)
    {
        var bind = _binder as Action<sqlite3_stmt, T> ?? (Action<sqlite3_stmt, T>)(_binder = CompileBinder<T>());
        bind(_stmt, row);
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
    /// One delegate per statement and row type: bind_text16 / bind_int64 / bind_null by index, no boxing. Each parameter is
    /// its property's getter (an open delegate to the get method) feeding the typed bind: no expression tree is compiled
    /// (measured: compiling them touched a megabyte of System.Linq.Expressions and the JIT's code heap).
    /// </summary>
    private Action<sqlite3_stmt, T> CompileBinder<T>()
    {
        var count = raw.sqlite3_bind_parameter_count(_stmt);
        var binders = new Action<sqlite3_stmt, T>[count];
        for (var i = 1; i <= count; i++)
        {
            var name = raw.sqlite3_bind_parameter_name(_stmt, i).utf8_to_string()
                ?? throw new InvalidOperationException($"Parameter {i} has no name (use @Name for a row's property) in: {Sql}");
            var property = typeof(T).GetProperty(name.TrimStart('@', ':', '$'), BindingFlags.Public | BindingFlags.Instance)
                ?? throw new InvalidOperationException($"{typeof(T).Name} has no property for {name} in: {Sql}");
            binders[i - 1] = Binder<T>(property, i)
                ?? throw new InvalidOperationException($"{typeof(T).Name}.{property.Name}: {property.PropertyType.Name} is not a column type the writer binds.");
        }
        return (stmt, row) =>
        {
            foreach (var bind in binders)
                bind(stmt, row);
        };
    }

    private static Action<sqlite3_stmt, T>? Binder<T>(PropertyInfo property, int i)
    {
        var type = property.PropertyType;
        if (type == typeof(string)) return Bind<T, string?>(property, i, BindValue);
        if (type == typeof(long)) return Bind<T, long>(property, i, BindValue);
        if (type == typeof(long?)) return Bind<T, long?>(property, i, BindValue);
        if (type == typeof(int)) return Bind<T, int>(property, i, BindValue);
        if (type == typeof(int?)) return Bind<T, int?>(property, i, BindValue);
        if (type == typeof(bool)) return Bind<T, bool>(property, i, BindValue);
        return null;
    }

    private static Action<sqlite3_stmt, T> Bind<T, TValue>(PropertyInfo property, int i, Action<sqlite3_stmt, int, TValue> bind)
    {
        if (typeof(T).IsValueType || property.GetMethod is not { IsStatic: false } getter)
            throw new InvalidOperationException($"{typeof(T).Name}.{property.Name}: the writer binds readable properties of classes.");
        var get = getter.CreateDelegate<Func<T, TValue>>();
        return (stmt, row) => bind(stmt, i, get(row));
    }

    // SQLite binds a null pointer as NULL and an empty span may pin to one: "" goes through the zero-terminated overload.
    private static void BindValue(sqlite3_stmt stmt, int i, string? value) => Check(value switch
    {
        null => raw.sqlite3_bind_null(stmt, i),
        "" => raw.sqlite3_bind_text(stmt, i, ""),
        _ => raw.sqlite3_bind_text16(stmt, i, value.AsSpan()),
    });

    private static void BindValue(sqlite3_stmt stmt, int i, long value) => Check(raw.sqlite3_bind_int64(stmt, i, value));

    private static void BindValue(sqlite3_stmt stmt, int i, long? value) =>
        Check(value is { } v ? raw.sqlite3_bind_int64(stmt, i, v) : raw.sqlite3_bind_null(stmt, i));

    private static void BindValue(sqlite3_stmt stmt, int i, int value) => Check(raw.sqlite3_bind_int64(stmt, i, value));

    private static void BindValue(sqlite3_stmt stmt, int i, int? value) =>
        Check(value is { } v ? raw.sqlite3_bind_int64(stmt, i, v) : raw.sqlite3_bind_null(stmt, i));

    private static void BindValue(sqlite3_stmt stmt, int i, bool value) => Check(raw.sqlite3_bind_int64(stmt, i, value ? 1 : 0));

    private static void Check(int rc)
    {
        // Binding fails only on a misuse (an index out of range, too big a value): a bug, not a storage fault.
        if (rc != raw.SQLITE_OK)
            throw new SqliteException($"SQLite could not bind a parameter (error {rc}).", rc);
    }
}
