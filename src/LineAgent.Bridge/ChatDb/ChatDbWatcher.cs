namespace LineAgent.Bridge.ChatDb;

/// <summary>
/// Raises <see cref="Changed"/> once a burst of writes to chat.db or chat.db-wal has been quiet for the
/// debounce time. File watchers can go quiet after WAL checkpoints, so callers also poll slowly.
/// </summary>
public sealed class ChatDbWatcher : IDisposable
{
    private readonly FileSystemWatcher? _watcher;
    private readonly Timer _debounce;
    private readonly TimeSpan _quiet;

    public ChatDbWatcher(string chatDbPath, TimeSpan debounce)
    {
        _quiet = debounce;
        _debounce = new Timer(_ => Changed?.Invoke(), null, Timeout.Infinite, Timeout.Infinite);
        var dir = Path.GetDirectoryName(Path.GetFullPath(chatDbPath))!;
        var name = Path.GetFileName(chatDbPath);
        if (!Directory.Exists(dir))
            return;
        try
        {
            _watcher = new FileSystemWatcher(dir)
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName | NotifyFilters.CreationTime,
                IncludeSubdirectories = false,
            };
            _watcher.Filters.Add(name);
            _watcher.Filters.Add(name + "-wal");
            _watcher.Changed += OnEvent;
            _watcher.Created += OnEvent;
            _watcher.Renamed += OnEvent;
            _watcher.EnableRaisingEvents = true;
            IsWatching = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or PlatformNotSupportedException)
        {
            _watcher?.Dispose();
            _watcher = null;
        }
    }

    /// <summary>False when the folder could not be watched (missing, no permission): polling only.</summary>
    public bool IsWatching { get; }

    public event Action? Changed;

    private void OnEvent(object sender, FileSystemEventArgs e) => _debounce.Change(_quiet, Timeout.InfiniteTimeSpan);

    public void Dispose()
    {
        _watcher?.Dispose();
        _debounce.Dispose();
    }
}
