using SQLitePCL;

namespace LineAgent.Storage;

/// <summary>Process-wide SQLite settings, which SQLite accepts only before its first connection.</summary>
public static class SqliteSetup
{
    private const int SqliteConfigMemStatus = 9; // SQLITE_CONFIG_MEMSTATUS

    /// <summary>
    /// Memory statistics off: with them on (the default) every allocation SQLite makes takes one process-wide mutex to
    /// count it, and the agent never asks for the count (sqlite3_memory_used). Measured under the POST and bulk benches:
    /// pthread_mutex_lock/unlock were 8-9 % of the writer thread. Nothing else changes. Returns false when SQLite was
    /// already initialised (a host that opened a connection first): the default stays, which is only slower.
    /// </summary>
    public static bool BeforeFirstConnection()
    {
        Batteries_V2.Init();
        return raw.sqlite3_config(SqliteConfigMemStatus, 0) == raw.SQLITE_OK;
    }
}
