using Microsoft.Extensions.Options;

namespace LineAgent.Hosting;

/// <summary>The files of one agent under its data directory.</summary>
public sealed class DataDirectory
{
    public DataDirectory(IOptions<AgentOptions> options) : this(options.Value.ResolveDataDir()) { }

    public DataDirectory(string root)
    {
        Root = root;
        Directory.CreateDirectory(Root);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string Root { get; }
    public string Database => Path.Combine(Root, "lineagent.db");
    public string Outbox => Path.Combine(Root, "outbox");
    public string TokenFile => Path.Combine(Root, "api-token");
    public string LockFile => Path.Combine(Root, "agent.lock");
}
