using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The agent's data dir on a small tmpfs made by the test: filled up, then remounted read-only. Requests get a
/// clear 503 and nothing is lost; due messages wait instead of failing; when space returns everything goes out
/// by itself and no temporary file is left. Needs root to mount (CI runs as root); skipped elsewhere.
/// </summary>
public sealed class DiskFaultTests
{
    private TempDir _dir = null!;
    private string _mount = null!;

    [SetUp]
    public async Task SetUp()
    {
        _dir = new TempDir();
        _mount = _dir.File("tmpfs");
        Directory.CreateDirectory(_mount);
        var mounted = await Run("mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", _mount);
        if (mounted.ExitCode != 0)
            Assert.Ignore($"cannot mount a tmpfs here (needs root): {mounted.Stderr.Trim()}");
    }

    [TearDown]
    public async Task TearDown()
    {
        await Run("umount", "-l", _mount);
        _dir.Dispose();
    }

    private static Task<Programs.Result> Run(string file, params string[] args) => Programs.RunAsync(file, args, timeout: TimeSpan.FromSeconds(30));

    private void Fill(string path)
    {
        var chunk = new byte[256 * 1024];
        using var filler = new FileStream(path, FileMode.Create, FileAccess.Write);
        try
        {
            while (true)
                filler.Write(chunk);
        }
        catch (IOException)
        {
            // full
        }
    }

    /// <summary>An agent on <paramref name="dataDir"/> stores one message for tomorrow and stops cleanly (no -wal left); its id.</summary>
    private static async Task<string> StoreOneAndStopAsync(string dataDir)
    {
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using var api = agent.Api();
        var id = (await (await api.SendMessageAsync(new { content = "kept", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
            .ExpectAsync(HttpStatusCode.Created)).Str("id");
        Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        return id;
    }

    private static async Task AssertStillScheduledAsync(string dataDir, string id)
    {
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using var api = agent.Api();
        Assert.That((await api.GetJsonAsync($"/api/messages/{id}")).Str("status"), Is.EqualTo("scheduled"));
    }

    private static async Task<long> CountAsync(string dataDir, string where)
    {
        var db = new Db(Path.Combine(dataDir, "lineagent.db"));
        await using var c = await db.OpenAsync();
        return await c.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM messages WHERE {where}");
    }

    [Test]
    public async Task ADiskThatFillsUp_ShouldAnswer503_FailNothing_AndRecoverBySelf()
    {
        var dataDir = Path.Combine(_mount, "data");
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using var api = agent.Api();
        var at = DateTimeOffset.UtcNow.AddSeconds(3);
        var scheduled = new List<string>();
        for (var i = 0; i < 10; i++)
            scheduled.Add((await (await api.SendMessageAsync(new { content = $"due while full {i}", recipientPhone = "+12025550123", scheduledAt = at.ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        Fill(Path.Combine(_mount, "filler"));

        // Each insert needs new WAL space sooner or later: a 503 storage_full with Retry-After, never a 500.
        JsonObject? refused = null;
        for (var i = 0; i < 100 && refused is null; i++)
        {
            var response = await api.SendMessageAsync(new { content = $"while full {i}", recipientPhone = "+12025550124", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") });
            Assert.That((int)response.StatusCode, Is.AnyOf(201, 503), await response.Content.ReadAsStringAsync());
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                Assert.That(response.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(30)));
                refused = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
            }
        }
        Assert.That(refused, Is.Not.Null, "the full disk never showed");
        Assert.That(refused.Str("code"), Is.EqualTo("storage_full"));
        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["storage"].Str("state"), Is.EqualTo("full"));
        Assert.That(status["lastError"].Str("code"), Is.EqualTo("storage_full"), "what the menu bar shows");

        // The messages fall due while the disk is full: they wait, none fails for it.
        await Eventually.TrueAsync(() => DateTimeOffset.UtcNow > at + TimeSpan.FromSeconds(2), "the messages fell due while the disk was full", TimeSpan.FromSeconds(30));
        Assert.That(await CountAsync(dataDir, "status = 'failed'"), Is.Zero);

        File.Delete(Path.Combine(_mount, "filler"));
        await Eventually.TrueAsync(async () => await CountAsync(dataDir, $"status = 'sent' AND id IN ('{string.Join("','", scheduled)}')") == 10,
            "every due message sent once space returned", TimeSpan.FromSeconds(90));
        await (await api.SendMessageAsync(new { content = "after", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That((await api.GetJsonAsync("/api/status"))["storage"].Str("state"), Is.EqualTo("ok"));
        Assert.That(await CountAsync(dataDir, "status = 'failed'"), Is.Zero);
        var outbox = Path.Combine(dataDir, "outbox");
        Assert.That(Directory.GetFiles(outbox, "*.tmp", SearchOption.AllDirectories), Is.Empty, "no temporary file left behind");
        Assert.That(Directory.GetFiles(outbox, "*.json").Select(Path.GetFileName).GroupBy(f => f!.Split('.')[0]).Where(g => g.Count() > 1), Is.Empty,
            "none sent twice");
    }

    /// <summary>
    /// A crash leaves the newest messages out of the search indexes, which the next start adds. On a full disk that write
    /// failed and the start ended with a stack trace (exit 1; under launchd a restart loop, the menu bar "not running").
    /// Now the agent starts, says the disk is full, and adds them once there is room.
    /// </summary>
    [Test]
    public async Task AStartOnAFullDisk_WithSearchIndexingOwed_ShouldStartAndSaySo_AndIndexOnceThereIsRoom()
    {
        var dataDir = Path.Combine(_mount, "data");
        string id;
        using (var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]))
        using (var api = agent.Api())
        {
            id = (await (await api.SendMessageAsync(new { content = "zanzibar quarterly", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id");
            agent.Kill(); // before the writer's idle catch-up (1 s) could index it
        }
        Fill(Path.Combine(_mount, "filler"));

        using (var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]))
        using (var api = agent.Api())
        {
            await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/status"))["storage"].Str("state") == "full",
                "the status says the disk is full", TimeSpan.FromSeconds(30));
            var status = await api.GetJsonAsync("/api/status");
            Assert.That(status["lastError"].Str("code"), Is.EqualTo("storage_full"));
            Assert.That(status["lastError"]!["messageId"], Is.Null, "no message is at fault");
            // doctor measures the disk the data dir is on, not /.
            var doctor = await Programs.LineAgentAsync("doctor", "--data-dir", dataDir, "--url", "http://127.0.0.1:9");
            Assert.That(doctor.Lines.Single(l => l.Contains("Disk space")), Does.StartWith("[fail] Disk space: 0 MB free for"), doctor.Stdout);
            Assert.That((await api.GetJsonAsync($"/api/messages/{id}")).Str("status"), Is.EqualTo("scheduled"));

            File.Delete(Path.Combine(_mount, "filler"));
            await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?q=zanzibar"))["items"]!.AsArray().Count == 1,
                "the search finds the message once the disk has room", TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// A full disk can refuse the dry-run outbox's files while the database still writes (into WAL room it already has):
    /// every send waits, and /api/status said storage "ok" because the database's next good write cleared the state.
    /// Here the outbox is its own tiny disk, full from the start, so only the outbox is refused.
    /// </summary>
    [Test]
    public async Task AnOutboxThatCannotBeWritten_ShouldShowInTheStatus_UntilAFileIsWrittenAgain()
    {
        var dataDir = Path.Combine(_mount, "data");
        var outbox = Path.Combine(dataDir, "outbox");
        Directory.CreateDirectory(outbox);
        Assert.That((await Run("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", outbox)).ExitCode, Is.Zero);
        try
        {
            Fill(Path.Combine(outbox, "filler"));
            using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
            using var api = agent.Api();
            var queued = await (await api.SendMessageAsync(new { content = "waits for room", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Accepted);
            Assert.That(queued.Str("status"), Is.EqualTo("queued"));

            var status = await api.GetJsonAsync("/api/status");
            Assert.That(status["storage"].Str("state"), Is.EqualTo("full"), status.ToJsonString());
            Assert.That(status["lastError"].Str("code"), Is.EqualTo("storage_full"));
            Assert.That(status["lastError"].Str("message"), Does.Contain("outbox"));
            Assert.That(status["lines"]![0]!["health"]!.AsArray().Select(h => h.Str("state")), Is.All.EqualTo("unavailable"), "the line cannot send");
            // The database's own writes go on (the message and its events are stored) and do not clear it.
            await (await api.SendMessageAsync(new { content = "stored", recipientPhone = "+12025550124", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created);
            Assert.That((await api.GetJsonAsync("/api/status"))["storage"].Str("state"), Is.EqualTo("full"));

            File.Delete(Path.Combine(outbox, "filler"));
            // The status itself tries the outbox again: clear at once, not only at the next send (30 s later here).
            Assert.That((await api.GetJsonAsync("/api/status"))["storage"].Str("state"), Is.EqualTo("ok"));
            Assert.That(Directory.GetFiles(outbox, "*.tmp"), Is.Empty, "the status's trial file is removed");
            await Eventually.TrueAsync(async () => (await api.GetJsonAsync($"/api/messages/{queued.Str("id")}")).Str("status") == "sent",
                "sent at the retry once the outbox has room", TimeSpan.FromSeconds(90));
            Assert.That((await api.GetJsonAsync("/api/status"))["storage"].Str("state"), Is.EqualTo("ok"));
        }
        finally
        {
            await Run("umount", "-l", outbox);
        }
    }

    [Test]
    public async Task AReadOnlyDataDir_ShouldStopTheAgentWithOneClearLine_AndLoseNothing()
    {
        var dataDir = Path.Combine(_mount, "data");
        var id = await StoreOneAndStopAsync(dataDir);

        Assert.That((await Run("mount", "-o", "remount,ro", _mount)).ExitCode, Is.Zero);
        var refused = await Programs.LineAgentAsync("run", "--dry-run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0");
        var output = (refused.Stdout + refused.Stderr).Trim();
        TestContext.Out.WriteLine(output);
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(output, Does.Contain(dataDir));
        Assert.That(output, Does.Not.Contain("   at "), "one clear line, no stack trace");

        Assert.That((await Run("mount", "-o", "remount,rw", _mount)).ExitCode, Is.Zero);
        await AssertStillScheduledAsync(dataDir, id);
    }

    /// <summary>
    /// After a clean stop (no -wal or -shm left) a start on a full disk cannot open the database: SQLite cannot create them
    /// and says "disk I/O error". The agent said to check the file and restore a backup, which would throw away everything
    /// since it; with its lock file gone too it crashed with a stack trace (black-box probe). Now one line saying the disk
    /// is full and that nothing is lost; once there is room it starts with everything.
    /// </summary>
    [Test]
    public async Task AStartOnAFullDisk_AfterACleanStop_ShouldSayTheDiskIsFull_NotAdviseARestore()
    {
        var dataDir = Path.Combine(_mount, "data");
        var id = await StoreOneAndStopAsync(dataDir);
        Assert.That(File.Exists(Path.Combine(dataDir, "lineagent.db-wal")), Is.False, "a clean stop leaves no -wal");
        File.Delete(Path.Combine(dataDir, "agent.lock"));
        Fill(Path.Combine(_mount, "filler"));

        var refused = await Programs.LineAgentAsync("run", "--dry-run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0");
        var output = (refused.Stdout + refused.Stderr).Trim();
        TestContext.Out.WriteLine(output);
        Assert.That(refused.ExitCode, Is.EqualTo(78));
        Assert.That(output, Does.Contain("the disk holding it is full").And.Contain("Nothing of it was changed").And.Not.Contain("restore the last good copy"));
        Assert.That(output, Does.Not.Contain("   at "), "one clear line, no stack trace");

        File.Delete(Path.Combine(_mount, "filler"));
        await AssertStillScheduledAsync(dataDir, id);
    }

    /// <summary>The first start on a full disk: a stack trace and exit 1 before, and lineagent.db.creating (+ -wal, -shm) left behind (probe).</summary>
    [Test]
    public async Task AFirstStartOnAFullDisk_ShouldSayTheDiskIsFull_AndLeaveNoHalfMadeDatabase()
    {
        var dataDir = Path.Combine(_mount, "data");
        Directory.CreateDirectory(dataDir);
        Fill(Path.Combine(_mount, "filler"));

        var refused = await Programs.LineAgentAsync("run", "--dry-run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0", "--Api:Token=tok");
        var output = (refused.Stdout + refused.Stderr).Trim();
        TestContext.Out.WriteLine(output);
        Assert.That(refused.ExitCode, Is.EqualTo(78));
        Assert.That(output, Does.Contain("cannot be created: the disk holding it is full").And.Contain("nothing is lost"));
        Assert.That(output, Does.Not.Contain("   at ").And.Not.Contain("unexpected error"), "one clear line, no stack trace");
        Assert.That(Directory.GetFiles(dataDir).Select(Path.GetFileName), Has.None.Contains("lineagent.db"), "no half-made database");

        File.Delete(Path.Combine(_mount, "filler"));
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using var api = agent.Api();
        Assert.That((await api.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "it starts once there is room");
    }

    /// <summary>
    /// Probe M: a first start with a little room (600-800 KB) migrated into the -wal, whose checkpoint at the connection's close
    /// failed for want of room unseen; the file cut short was put in place and its -wal deleted with the other leftovers:
    /// "malformed", exit 1, and every later start refused the never-used database as damaged. Each amount of room from none
    /// to 1.5 MB: either the database is made whole, or it is not made at all and the start says the disk is full.
    /// </summary>
    [Test]
    public void AFirstStartWithLittleRoom_ShouldMakeTheDatabaseWhole_OrNotAtAll()
    {
        var dataDir = Path.Combine(_mount, "data");
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, "lineagent.db");
        var filler = Path.Combine(_mount, "filler");
        var (made, refused) = (0, 0);
        for (var room = 0; room <= 1536 * 1024; room += 32 * 1024)
        {
            Fill(filler);
            using (var stream = new FileStream(filler, FileMode.Open, FileAccess.Write))
                stream.SetLength(Math.Max(0, stream.Length - room));
            try
            {
                DatabaseStartup.Open(path, new StorageOptions(), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                made++;
                Assert.That(DatabaseFile.Inspect(path).Ok, Is.True, $"{room / 1024} KB free: the database made is whole ({DatabaseFile.Inspect(path).Problem})");
            }
            catch (DatabaseUnusableException e)
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                refused++;
                Assert.That(e.Message, Does.Contain("cannot be created: the disk holding it is full"), $"{room / 1024} KB free");
                Assert.That(Directory.GetFiles(dataDir).Select(Path.GetFileName), Has.None.Contains("lineagent.db"), $"{room / 1024} KB free: no half-made database");
            }
            File.Delete(filler);
            DatabaseFile.DeleteWithCompanions(path);
        }
        TestContext.Out.WriteLine($"made {made}, refused {refused}");
        Assert.That((made, refused), Is.Not.EqualTo((0, 0)).And.Matches<(int Made, int Refused)>(x => x.Made > 0 && x.Refused > 0), "both ends of the range were met");
    }

    /// <summary>A restore on a disk without room for its copy: a stack trace and a partial copy that kept the disk full (probe).</summary>
    [Test]
    public async Task ARestoreWithoutRoomForItsCopy_ShouldSayOneLine_AndLeaveNoPartialCopy()
    {
        var dataDir = Path.Combine(_mount, "data");
        var id = await StoreOneAndStopAsync(dataDir);
        DatabaseBackups.Create(Path.Combine(dataDir, "lineagent.db"), DateTimeOffset.UtcNow, 7);
        Fill(Path.Combine(_mount, "filler"));

        var restore = await Programs.LineAgentAsync("restore", "--data-dir", dataDir, "--yes");
        TestContext.Out.WriteLine(restore.Stdout + restore.Stderr);
        Assert.That(restore.ExitCode, Is.EqualTo(1));
        Assert.That(restore.Stderr.Trim(), Does.StartWith("Could not copy").And.Contain("nothing was changed").And.Not.Contain("   at "));
        Assert.That(Directory.GetFiles(dataDir).Where(f => f.Contains(DatabaseRestore.StagingSuffix)), Is.Empty, "no partial copy left");

        File.Delete(Path.Combine(_mount, "filler"));
        await AssertStillScheduledAsync(dataDir, id);
    }
}
