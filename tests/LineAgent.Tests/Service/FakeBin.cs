namespace LineAgent.Tests.Service;

/// <summary>
/// A directory of stand-in commands (shell scripts) to put first on PATH: Mac-only tools such as
/// launchctl or codesign, or a python3 that must never be called. Each call can be logged to <see cref="Calls"/>.
/// </summary>
public sealed class FakeBin
{
    public FakeBin(string root)
    {
        Dir = Directory.CreateDirectory(Path.Combine(root, "fake-bin")).FullName;
        CallLog = Path.Combine(root, "fake-calls.log");
    }

    public string Dir { get; }

    /// <summary>Every fake that calls <c>log_call</c> appends "name args..." here.</summary>
    public string CallLog { get; }

    public string[] Calls => File.Exists(CallLog) ? File.ReadAllLines(CallLog) : [];

    /// <summary>PATH with the fakes first.</summary>
    public string PathVariable => $"{Dir}:{Environment.GetEnvironmentVariable("PATH")}";

    /// <summary>Writes an executable sh script; <c>log_call</c> (a function) records "$0-name $*".</summary>
    public FakeBin Add(string name, string body)
    {
        var file = Path.Combine(Dir, name);
        File.WriteAllText(file, $"#!/bin/sh\nlog_call() {{ printf '%s\\n' \"{name} $*\" >>'{CallLog}'; }}\n{body}\n");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return this;
    }

    /// <summary>A python3 that only leaves a marker file behind: tests assert it never ran.</summary>
    public FakeBin NoPython(string marker) =>
        Add("python3", $"touch '{marker}'\nexit 1").Add("python", $"touch '{marker}'\nexit 1");

    public void ClearCalls() => File.Delete(CallLog);
}
