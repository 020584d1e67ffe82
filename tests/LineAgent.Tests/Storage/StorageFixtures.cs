using System.Diagnostics;
using System.Net;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;

namespace LineAgent.Tests.Storage;

/// <summary>Helpers for the database-file tests: a real agent's database, damage, and `lineagent run` until it exits.</summary>
internal static class StorageFixtures
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Starts the real agent on <paramref name="dataDir"/>, stores <paramref name="count"/> messages scheduled a month ahead, stops it cleanly.</summary>
    public static async Task<List<string>> AgentWithMessagesAsync(string dataDir, int count, params string[] extraArgs)
    {
        var ids = new List<string>();
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run", .. extraArgs]);
        using (var api = agent.Api())
        {
            var later = DateTimeOffset.UtcNow.AddDays(30).ToString("O");
            for (var i = 0; i < count; i++)
            {
                var m = await (await api.SendMessageAsync(new
                {
                    content = $"message {i:000}: " + new string('x', 400),
                    recipientPhone = "+12025550123",
                    recipientName = $"Lead {i}",
                    scheduledAt = later,
                })).ExpectAsync(HttpStatusCode.Created);
                ids.Add(m.Str("id"));
            }
        }
        Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero, agent.Output);
        Checkpoint(Path.Combine(dataDir, "lineagent.db"));
        return ids;
    }

    /// <summary>Moves everything in the -wal into the file and removes the -wal: the file alone holds the data.</summary>
    public static void Checkpoint(string path)
    {
        SqliteConnection.ClearAllPools();
        using (var c = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            c.Open();
            c.Execute("PRAGMA wal_checkpoint(TRUNCATE);");
        }
        Assert.That(File.Exists(path + "-wal"), Is.False, "the -wal is gone once the last connection closed");
    }

    public static long Count(string path, string sql = "SELECT COUNT(*) FROM messages")
    {
        using var c = new SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
        c.Open();
        return c.ExecuteScalar<long>(sql);
    }

    public static void Overwrite(string path, long offset, int length)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write(System.Security.Cryptography.RandomNumberGenerator.GetBytes(length));
    }

    public static void Truncate(string path, long length)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.SetLength(length);
    }

    /// <summary>`dotnet lineagent.dll run` that must exit by itself; killed (and the test failed) if it starts serving.</summary>
    public static async Task<Programs.Result> RunUntilExitAsync(string dataDir, params string[] extraArgs)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { AgentProcess.AgentDll, "run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0", "--dry-run", "--Api:Token=t" }.Concat(extraArgs))
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            Assert.Fail($"the agent did not stop by itself:\n{await stdout}\n{await stderr}");
        }
        return new Programs.Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Refused: exit 78, exactly one line on stderr that starts with the path, no stack trace anywhere.</summary>
    public static string AssertRefused(Programs.Result result, string dbPath)
    {
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(DatabaseUnusableException.ExitCodeConfig), result.Stdout + result.Stderr);
            Assert.That(lines, Has.Length.EqualTo(1), "stderr:\n" + result.Stderr);
            Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at "), "a stack trace");
            Assert.That(result.Stdout, Does.Not.Contain("Hosting failed"));
        });
        Assert.That(lines[0], Does.StartWith($"lineagent: {dbPath} "));
        TestContext.Out.WriteLine(lines[0]);
        return lines[0];
    }

    public static UnixFileMode Mode(string path) => File.GetUnixFileMode(path);
}
