using System.Security.Cryptography;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using static LineAgent.Tests.Storage.StorageFixtures;

namespace LineAgent.Tests.Storage;

/// <summary>
/// `lineagent run` (the real process) on a database that must not be used: it stops before migrating, with exit code
/// 78 and ONE line on stderr naming the file, what is wrong and what to do; the file is left as it was.
/// </summary>
public sealed class DamagedDatabaseStartupTests
{
    private static TempDir _template = null!;
    private static string TemplateDb => _template.File("lineagent.db");
    private TempDir _dir = null!;
    private string DbPath => _dir.File("lineagent.db");

    [OneTimeSetUp]
    public static async Task MakeTemplate()
    {
        _template = new TempDir();
        await AgentWithMessagesAsync(_template.Path, 60);
        TestContext.Out.WriteLine($"template database: {new FileInfo(TemplateDb).Length} bytes");
    }

    [OneTimeTearDown]
    public static void DropTemplate() => _template.Dispose();

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDir();
        File.Copy(TemplateDb, DbPath);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task ZeroBytes_ShouldNotBeAFreshStart_ButARefusalThatPointsToRestore()
    {
        // A backup exists (the usual case on a machine that ran for a while): the line points to it.
        var backups = Directory.CreateDirectory(_dir.File("backups")).FullName;
        File.Copy(TemplateDb, Path.Combine(backups, DatabaseBackups.NameFor(DateTimeOffset.UtcNow.AddHours(-3))));
        Truncate(DbPath, 0);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("is empty (0 bytes)").And.Contain($"lineagent restore --data-dir {_dir.Path}"));
        Assert.That(new FileInfo(DbPath).Length, Is.Zero, "the empty file is left for the restore, not turned into a new database");
    }

    [Test]
    public async Task ZeroBytes_WithoutAnyBackup_ShouldSayHowToStartEmptyOnPurpose()
    {
        Truncate(DbPath, 0);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("is empty (0 bytes)").And.Contain("there is no backup").And.Contain($"mv {DbPath} {DbPath}.empty"));
    }

    [Test]
    public async Task TruncatedToHalf_ShouldBeRefused_AsCutShort()
    {
        var length = new FileInfo(DbPath).Length;
        Truncate(DbPath, length / 2);
        var before = Hash(DbPath);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("is damaged").And.Contain("cut short").And.Contain("there is no backup"));
        Assert.That(Hash(DbPath), Is.EqualTo(before), "the damaged file is left as it was");
    }

    [Test]
    public async Task GarbageOverTheFirstPages_ShouldBeRefused_ForTheMissingHeader()
    {
        Overwrite(DbPath, 0, 3 * 4096);
        var before = Hash(DbPath);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("does not start with the SQLite header"));
        Assert.That(Hash(DbPath), Is.EqualTo(before));
    }

    [Test]
    public async Task GarbageBehindAnIntactHeader_ShouldBeRefused_ByQuickCheck()
    {
        Overwrite(DbPath, 100, 4 * 4096 - 100); // the schema page and the next ones; the 100-byte header stays valid
        var before = Hash(DbPath);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("is damaged (quick_check: "));
        Assert.That(Hash(DbPath), Is.EqualTo(before));
    }

    [Test]
    public async Task ShorterThanAHeader_ShouldBeRefused()
    {
        Truncate(DbPath, 50);

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("only 50 bytes long"));
    }

    [Test]
    public async Task NewerSchema_ShouldBeRefused_WithoutTouchingIt()
    {
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA user_version = 999;";
            cmd.ExecuteNonQuery();
        }

        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);

        Assert.That(line, Does.Contain("has schema version 999, newer than this agent knows"));
        Assert.That(Count(DbPath, "PRAGMA user_version"), Is.EqualTo(999));
    }

    /// <summary>
    /// A lineagent.db that is a symlink (to another volume): the link's own size (its text) was measured, and a good
    /// database was refused as "only 24 bytes long" with advice to restore; a link that points nowhere (a volume not
    /// mounted) was "damaged" too (probe).
    /// </summary>
    [Test]
    public async Task ASymlinkedDatabase_ShouldBeUsed_AndALinkThatPointsNowhereSaidAsSuch()
    {
        using var elsewhere = new TempDir();
        var target = elsewhere.File("kept.db");
        File.Move(DbPath, target);
        File.CreateSymbolicLink(DbPath, target);
        using (var agent = await AgentProcess.StartAsync(_dir.Path, args: ["--dry-run"]))
        {
            using var api = agent.Api();
            Assert.That((await api.GetJsonAsync("/api/messages?limit=100"))["items"]!.AsArray(), Is.Not.Empty, "the linked database's messages");
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }

        File.Delete(DbPath);
        File.CreateSymbolicLink(DbPath, elsewhere.File("unmounted/lineagent.db"));
        var line = AssertRefused(await RunUntilExitAsync(_dir.Path), DbPath);
        Assert.That(line, Does.Contain($"is a link to {elsewhere.File("unmounted/lineagent.db")}, which does not exist").And.Not.Contain("damaged").And.Not.Contain("restore"));
        Assert.That(new FileInfo(DbPath).LinkTarget, Is.Not.Null, "the link is left as it was");
    }

    [Test]
    public async Task MissingFile_ShouldBeAFreshStart_WithTheDatabaseAndItsWalPrivate()
    {
        File.Delete(DbPath);

        using var agent = await AgentProcess.StartAsync(_dir.Path, args: ["--dry-run"]);
        using (var api = agent.Api())
            await (await api.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddDays(1).ToString("O") }))
                .ExpectAsync(System.Net.HttpStatusCode.Created);

        Assert.That(Mode(DbPath), Is.EqualTo(OwnerOnly));
        Assert.That(Mode(DbPath + "-wal"), Is.EqualTo(OwnerOnly));
        Assert.That(Mode(DbPath + "-shm"), Is.EqualTo(OwnerOnly));
        Assert.That(File.Exists(DbPath + ".creating"), Is.False);
        Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
    }

    [Test]
    public async Task ExistingFileReadableByOthers_ShouldBeMadePrivate()
    {
        File.SetUnixFileMode(DbPath, OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using var agent = await AgentProcess.StartAsync(_dir.Path, args: ["--dry-run"]);

        Assert.That(Mode(DbPath), Is.EqualTo(OwnerOnly));
        Assert.That(agent.Output, Does.Contain("was readable by others (mode 0644); it is now 0600"));
        Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        Assert.That(Count(DbPath), Is.EqualTo(60), "the messages are all there");
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
}
