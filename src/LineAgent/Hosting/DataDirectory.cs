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

    /// <summary>
    /// The address the running agent listens on (its first http URL, the port as bound), written once it listens and removed
    /// when it stops: the CLI finds an agent started with `--urls` or LINEAGENT__Api__Urls, which its own settings do not name
    /// (probe I: `lineagent status` said nothing answered, and its advice to start one met the lock).
    /// </summary>
    public static string AddressFileIn(string root) => Path.Combine(root, "agent-url");

    /// <summary>
    /// The address in <see cref="AddressFileIn"/>, or null (none, unreadable, not an http URL on this Mac's loopback). The CLI
    /// sends the API token there, so only a loopback address is taken from a file: an agent listening elsewhere is named with --url.
    /// </summary>
    public static string? ReadAddress(string root)
    {
        try
        {
            var text = File.ReadAllText(AddressFileIn(root)).Trim();
            return Uri.TryCreate(text, UriKind.Absolute, out var url) && url.Scheme == Uri.UriSchemeHttp && url.IsLoopback ? text : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void WriteAddress(IEnumerable<string> urls, ILogger log)
    {
        // A loopback address first; one that listens on every address (0.0.0.0, [::]) is reached here through loopback.
        var http = urls.Select(u => Uri.TryCreate(u, UriKind.Absolute, out var url) && url.Scheme == Uri.UriSchemeHttp ? url : null).OfType<Uri>().ToList();
        var chosen = http.FirstOrDefault(u => u.IsLoopback) ?? http.FirstOrDefault(u => u.Host is "0.0.0.0" or "[::]");
        if (chosen is null)
            return; // only other addresses: the CLI needs --url (it sends the token only to loopback from this file)
        var first = chosen.IsLoopback ? chosen.GetLeftPart(UriPartial.Authority)
            : $"http://{(chosen.Host == "0.0.0.0" ? "127.0.0.1" : "[::1]")}:{chosen.Port}";
        var path = AddressFileIn(Root);
        try
        {
            File.WriteAllText(path + ".tmp", first + "\n");
            File.Move(path + ".tmp", path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Could not write {File} ({Reason}): lineagent commands need --url to find this agent", path, e.Message);
        }
    }

    public void RemoveAddress()
    {
        try
        {
            File.Delete(AddressFileIn(Root));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
