namespace LineAgent.Hosting;

/// <summary>One agent per data directory: an exclusive lock on &lt;data dir&gt;/agent.lock, held until disposal.</summary>
public sealed class DataDirLock : IDisposable
{
    private readonly FileStream _stream;

    public DataDirLock(DataDirectory dir)
    {
        try
        {
            _stream = new FileStream(dir.LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            // One line at start-up (exit 78), not a stack trace: the usual cause is a second `lineagent run`.
            throw new StartupRefusedException(
                $"lineagent: another LineAgent is already running with the data directory {dir.Root} (its lock {dir.LockFile} is held). " +
                "Stop it (launchctl bootout, or Ctrl+C), or give this one another --data-dir.", e);
        }
        _stream.SetLength(0);
        using var writer = new StreamWriter(_stream, leaveOpen: true);
        writer.Write(Environment.ProcessId);
    }

    public void Dispose() => _stream.Dispose();
}
