using Microsoft.Extensions.Options;

namespace LineAgent.Hosting;

/// <summary>The files of one agent under its data directory.</summary>
public sealed class DataDirectory
{
    public DataDirectory(IOptions<AgentOptions> options) : this(options.Value.ResolveDataDir()) { }

    public DataDirectory(string root)
    {
        Root = root;
        try
        {
            Directory.CreateDirectory(Root);
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            // A data dir the agent cannot write would fail later, message by message: say so now, once.
            var probe = Path.Combine(Root, $".write-check-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupRefusedException(
                $"lineagent: the data directory {Root} cannot be written ({e.Message}). Make it writable (or free some space) and start again; nothing was changed.", e);
        }
    }

    public string Root { get; }

    /// <summary>
    /// The synced folder <paramref name="path"/> is in (iCloud Drive, File Provider folders such as Dropbox, OneDrive and
    /// Google Drive under ~/Library/CloudStorage, or a Dropbox folder), null for a local one.
    /// </summary>
    public static string? SyncedFolder(string path)
    {
        var full = Path.GetFullPath(path).Replace('\\', '/') + "/";
        foreach (var (marker, name) in new[]
                 {
                     ("/Library/Mobile Documents/", "iCloud Drive"), ("/Library/CloudStorage/", "a cloud storage folder (~/Library/CloudStorage)"),
                     ("/Dropbox/", "a Dropbox folder"), ("/Dropbox (", "a Dropbox folder"),
                 })
            if (full.Contains(marker, StringComparison.OrdinalIgnoreCase))
                return name;
        return null;
    }

    public string Database => Path.Combine(Root, "lineagent.db");
    public string Outbox => Path.Combine(Root, "outbox");
    public string TokenFile => TokenFileIn(Root);

    /// <summary>The token file of the data directory <paramref name="root"/>, for readers that must not create the directory (the CLI).</summary>
    public static string TokenFileIn(string root) => Path.Combine(root, "api-token");
    public string LockFile => Path.Combine(Root, "agent.lock");
}
