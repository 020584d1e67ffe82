using System.Reflection;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>
/// Applies the numbered .sql files embedded in the assembly (NNN_name.sql), in order, each in its
/// own transaction, and records the last one in PRAGMA user_version. Shipped files never change.
/// </summary>
public static class Migrator
{
    private const string Prefix = "LineAgent.Migrations.";

    public static IReadOnlyList<(int Version, string Name, string Sql)> Load()
    {
        var asm = typeof(Migrator).Assembly;
        var list = new List<(int, string, string)>();
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            var file = name[Prefix.Length..];
            var version = int.Parse(file[..file.IndexOf('_')], System.Globalization.CultureInfo.InvariantCulture);
            using var stream = asm.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            list.Add((version, file, reader.ReadToEnd()));
        }
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        for (var i = 0; i < list.Count; i++)
            if (list[i].Item1 != i + 1)
                throw new InvalidOperationException($"Migrations must be numbered 1..n without gaps; found {list[i].Item2}.");
        return list;
    }

    public static int Migrate(Db db)
    {
        using var connection = db.Open();
        return Migrate(connection, db.Path);
    }

    /// <summary>Migrates the database open on <paramref name="connection"/> (<paramref name="path"/> only names it in errors).</summary>
    public static int Migrate(SqliteConnection connection, string path)
    {
        using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            wal.ExecuteNonQuery();
        }
        var current = UserVersion(connection);
        var migrations = Load();
        if (current > migrations.Count)
            throw new InvalidOperationException(
                $"The database {path} has schema version {current}, newer than this agent knows ({migrations.Count}). Upgrade the agent.");
        foreach (var (version, _, sql) in migrations.Where(m => m.Version > current))
        {
            using var tx = connection.BeginTransaction();
            using var cmd = connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sql + $"\nPRAGMA user_version = {version};";
            cmd.ExecuteNonQuery();
            tx.Commit();
            current = version;
        }
        return current;
    }

    public static int UserVersion(SqliteConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA user_version;";
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
