using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using static LineAgent.Tests.Storage.StorageFixtures;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The real agent backs its database up on schedule (kept to Storage:BackupsKept, 0600); the database is then
/// damaged, `lineagent run` refuses it, and `lineagent restore --yes` brings every message back.
/// </summary>
public sealed class BackupRestoreTests
{
    [Test]
    public async Task ScheduledBackups_ThenDamage_ThenRestore_ShouldBringEveryMessageBack()
    {
        using var dir = new TempDir();
        var db = dir.File("lineagent.db");
        var backupArgs = new[] { "--dry-run", "--Storage:BackupEvery=00:00:01", "--Storage:FirstBackupAfter=00:00:01", "--Storage:BackupsKept=3" };
        var ids = new List<string>();
        using (var agent = await AgentProcess.StartAsync(dir.Path, args: backupArgs))
        {
            using (var api = agent.Api())
            {
                var later = DateTimeOffset.UtcNow.AddDays(30).ToString("O");
                for (var i = 0; i < 30; i++)
                    ids.Add((await (await api.SendMessageAsync(new { content = $"kept {i}", recipientPhone = "+12025550123", scheduledAt = later }))
                        .ExpectAsync(HttpStatusCode.Created)).Str("id"));
            }
            var stored = DateTimeOffset.UtcNow;
            // Several backups after the last message was stored, so that pruning had to delete some.
            await Eventually.TrueAsync(() => DatabaseBackups.List(dir.Path).Count(b => b.TakenAt > stored) >= 3
                && Backups(agent.Output) >= 5, "five backups, three of them after the messages", TimeSpan.FromSeconds(60));

            Assert.That(Mode(db), Is.EqualTo(OwnerOnly));
            Assert.That(Mode(db + "-wal"), Is.EqualTo(OwnerOnly));
            Assert.That(Mode(db + "-shm"), Is.EqualTo(OwnerOnly));
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero, agent.Output);
            Assert.That(agent.Output, Does.Not.Contain("fail:"), "no error was logged");
        }

        var backups = DatabaseBackups.List(dir.Path);
        Assert.That(backups, Has.Count.EqualTo(3), "pruned to Storage:BackupsKept");
        Assert.That(Directory.GetFiles(dir.File("backups")).Select(Path.GetFileName), Is.EquivalentTo(backups.Select(b => b.Name)),
            "no temporary or half-written file is left in backups/");
        Assert.That(backups.Select(b => Mode(b.Path)), Is.All.EqualTo(OwnerOnly));
        Assert.That(File.GetUnixFileMode(dir.File("backups")), Is.EqualTo(OwnerOnly | UnixFileMode.UserExecute));
        Assert.That(backups.Select(b => Count(b.Path)), Is.All.EqualTo(30), "each backup holds every message");

        // The disk damages the first pages; the agent refuses to start and says what to do.
        Overwrite(db, 0, 8192);
        var refused = AssertRefused(await RunUntilExitAsync(dir.Path), db);
        Assert.That(refused, Does.Contain($"Stop here; restore the last good copy with: lineagent restore --data-dir {dir.Path}"));
        var damaged = File.ReadAllBytes(db);

        var list = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path);
        TestContext.Out.WriteLine(list.Stdout);
        Assert.That(list.ExitCode, Is.Zero, list.Stderr);
        Assert.That(list.Stdout, Does.Contain("does not start with the SQLite header"));
        Assert.That(backups.Select(b => b.Name), Is.All.Matches<string>(name => list.Stdout.Contains(name, StringComparison.Ordinal)));
        Assert.That(File.ReadAllBytes(db), Is.EqualTo(damaged), "listing changes nothing");

        var restore = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path, "--yes");
        TestContext.Out.WriteLine(restore.Stdout);
        Assert.That(restore.ExitCode, Is.Zero, restore.Stdout + restore.Stderr);
        Assert.That(restore.Stdout, Does.Contain($"Restored {backups[0].Path}").And.Contain("30 messages").And.Contain("moved it aside to"));
        var aside = Directory.GetFiles(dir.Path, "lineagent.db.damaged-*");
        Assert.That(aside, Has.Length.EqualTo(1), "the damaged file is kept, not deleted");
        Assert.That(File.ReadAllBytes(aside[0]), Is.EqualTo(damaged));
        Assert.That(Mode(db), Is.EqualTo(OwnerOnly));

        using (var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]))
        using (var api = agent.Api())
        {
            var page = await api.GetJsonAsync("/api/messages?limit=500");
            var back = page["items"]!.AsArray().Select(m => m.Str("id")).ToList();
            Assert.That(back, Is.EquivalentTo(ids), "every message is back");
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }
    }

    /// <summary>
    /// The database damaged under a running agent: /api/status answered 503, so the menu bar said "Agent not running" and
    /// doctor "refuses the token". It answers 200 with storage `error` first (no counts: they cannot be read), and a read
    /// that fails says it could not be read, not "nothing was stored".
    /// </summary>
    [Test]
    public async Task ADatabaseDamagedWhileTheAgentRuns_ShouldShowInTheStatus_NotAsAnAgentDown()
    {
        using var dir = new TempDir();
        var db = dir.File("lineagent.db");
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        using var api = agent.Api();
        await (await api.SendMessageAsync(new { content = "before", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
            .ExpectAsync(HttpStatusCode.Created);
        // Every page of the file but the header page: what the WAL does not hold now reads as garbage.
        var length = new FileInfo(db).Length;
        Overwrite(db, 4096, (int)(length - 4096));
        // A write changes the WAL, so the pooled readers drop their page caches and read the file again.
        await api.SendMessageAsync(new { content = "after", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") });

        var response = await api.GetAsync("/api/status");
        var status = await response.ExpectAsync(HttpStatusCode.OK);
        Assert.That(status["storage"].Str("state"), Is.EqualTo("error"), status.ToJsonString());
        Assert.That(status["lastError"].Str("code"), Is.EqualTo("storage_error"));
        Assert.That(status["counts"], Is.Null, "not zeros: they could not be read");
        Assert.That(status["lines"]!.AsArray(), Has.Count.EqualTo(1));

        var doctor = await Programs.LineAgentAsync("doctor", "--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}");
        TestContext.Out.WriteLine(doctor.Stdout);
        Assert.That(doctor.Stdout, Does.Contain("[  ok] Agent reachable").And.Not.Contain("refuses the token"));
        Assert.That(doctor.Stdout, Does.Contain("[fail] Storage writable"));
        var cli = await Programs.LineAgentAsync("status", "--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}");
        TestContext.Out.WriteLine(cli.Stdout);
        Assert.That(cli.Lines, Has.Some.StartsWith("storage: error since "), "the counts line says 'see storage above': it is there (probe)");
        Assert.That(cli.Stdout, Does.Contain("counts: unknown (the database cannot be read; see storage above)"));

        var list = await api.GetAsync("/api/messages?status=scheduled");
        if (list.StatusCode == HttpStatusCode.ServiceUnavailable)
            Assert.That(await list.Content.ReadAsStringAsync(), Does.Contain("could not be read").And.Not.Contain("nothing was stored"));
    }

    [Test]
    public async Task Restore_WhileTheAgentRuns_ShouldRefuseAndChangeNothing()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        DatabaseBackups.Create(dir.File("lineagent.db"), DateTimeOffset.UtcNow, 7);

        var restore = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path, "--yes");

        Assert.That(restore.ExitCode, Is.Not.Zero);
        Assert.That(restore.Stderr, Does.Contain("An agent is running on").And.Contain("Nothing was changed"));
        Assert.That(Directory.GetFiles(dir.Path, "lineagent.db.damaged-*").Concat(Directory.GetFiles(dir.Path, "lineagent.db.replaced-*")), Is.Empty);
        using (var api = agent.Api())
            Assert.That((await api.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "the agent is untouched");

        var list = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path);
        Assert.That(list.ExitCode, Is.Zero);
        Assert.That(list.Stdout, Does.Contain("An agent is running on this data directory: stop it before restoring."));
    }

    /// <summary>
    /// An opt-out given after the backup was dropped by the restore without a word, and so were the messages stored after it
    /// (probe): the opt-out is kept, and the messages not in the copy are counted.
    /// </summary>
    [Test]
    public async Task Restore_ShouldKeepTheOptOutsGivenAfterTheBackup_AndCountTheMessagesItDoesNotHave()
    {
        using var dir = new TempDir();
        using (var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]))
        {
            using var api = agent.Api();
            await (await api.SendMessageAsync(new { content = "before", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created);
            DatabaseBackups.Create(dir.File("lineagent.db"), DateTimeOffset.UtcNow, 7);
            await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550177", reason = "asked by phone" })).ExpectAsync(HttpStatusCode.Created);
            await (await api.SendMessageAsync(new { content = "after", recipientPhone = "+12025550124", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created);
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }

        var restore = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path, "--yes");
        TestContext.Out.WriteLine(restore.Stdout + restore.Stderr);
        Assert.That(restore.ExitCode, Is.Zero, restore.Stderr);
        Assert.That(restore.Stdout, Does.Contain("1 message(s) the agent stored after that backup are not in it"));
        Assert.That(restore.Stdout, Does.Contain("1 opt-out(s) that the database it replaces holds and the backup does not (given after the backup) were kept"));

        using var again = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        using var api2 = again.Api();
        var optOut = await (await api2.GetAsync("/api/suppressions/%2B12025550177")).ExpectAsync(HttpStatusCode.OK);
        Assert.That(optOut.Str("reason"), Is.EqualTo("asked by phone"));
    }

    private static int Backups(string output) =>
        output.Split('\n').Count(l => l.Contains("Backed up the database to", StringComparison.Ordinal));
}
