using LineAgent.Tests.Support;

namespace LineAgent.Tests.Service;

/// <summary>
/// `lineagent run` with a setting it cannot use: one line on stderr that names the setting, exit 78 (EX_CONFIG),
/// no stack trace, nothing listening. And one property of Lines:0 from the environment keeps the default line.
/// </summary>
public sealed class StartupConfigurationTests
{
    [TestCase("LINEAGENT__Lines__0__Pacing__MinGap", "abc", "Lines:0:Pacing:MinGap must be a duration")]
    [TestCase("LINEAGENT__Lines__0__Pacing__MaxPerHour", "lots", "Lines:0:Pacing:MaxPerHour must be a whole number")]
    [TestCase("LINEAGENT__Lines__1__Name", "Second Mac", "Lines:1:Id is missing")]
    [TestCase("LINEAGENT__Lines__0__Pacing__Window__To", "25:00", "Window:To '25:00' is not HH:mm")]
    [TestCase("LINEAGENT__Scheduling__MaxLateness", "-00:01:00", "Scheduling:MaxLateness must not be negative")]
    [TestCase("LINEAGENT__Agent__DryRunParallelSends", "0", "Agent:DryRunParallelSends must be between 1 and 64 (set by LINEAGENT__Agent__DryRunParallelSends")]
    [TestCase("LINEAGENT__Agent__DefaultRegion", "usa", "Agent:DefaultRegion must match the regular expression '^[A-Z]{2}$'")]
    [TestCase("LINEAGENT__Agent__DefaultRegion", "ZZ", "Agent:DefaultRegion 'ZZ' is not a region with phone numbers")]
    [TestCase("LINEAGENT__Email__Smtp__Port", "70000", "Email:Smtp:Port must be between 0 and 65535")]
    [TestCase("LINEAGENT__Api__SendWaitSeconds", "900", "Api:SendWaitSeconds must be between 0 and 600")]
    [TestCase("LINEAGENT__Api__SendWaitSeconds", "NaN", "Api:SendWaitSeconds must be between 0 and 600")]
    [TestCase("LINEAGENT__Agent__DefaultRegion", "", "Agent:DefaultRegion is required (set by LINEAGENT__Agent__DefaultRegion")]
    // An empty number, duration or choice is refused, not read as "keep the default" (the generated binder skips it).
    [TestCase("LINEAGENT__Email__Smtp__Port", "", "Email:Smtp:Port must be a whole number")]
    [TestCase("LINEAGENT__Lines__0__Pacing__MaxPerHour", "", "Lines:0:Pacing:MaxPerHour must be a whole number")]
    [TestCase("LINEAGENT__Scheduling__MaxLateness", "", "Scheduling:MaxLateness must be a duration")]
    [TestCase("LINEAGENT__Email__Smtp__Security", "", "Email:Smtp:Security must be a valid SmtpSecurity")]
    [TestCase("LINEAGENT__Lines__0__Pacing__Window__Days__1", "Funday", "Lines:0:Pacing:Window:Days:1 must be a day name")]
    [TestCase("LINEAGENT__Lines__0__Sms__Via", "sms", "Lines:0:Sms:Via 'sms' must be messages (the Mac's iPhone relay) or twilio")]
    // Durations the code under them cannot use (probe: a zero Twilio:Timeout failed every send as "may have been sent", a
    // zero InboundPollInterval asked Twilio 22 times a second).
    [TestCase("LINEAGENT__Twilio__Timeout", "00:00:00", "Twilio:Timeout must be between 00:00:01 and a day")]
    [TestCase("LINEAGENT__Twilio__InboundPollInterval", "00:00:00", "Twilio:InboundPollInterval must be between 00:00:00.1 and a day")]
    [TestCase("LINEAGENT__Twilio__StatusPollInterval", "-00:00:01", "Twilio:StatusPollInterval must be between 00:00:00.1 and a day")]
    [TestCase("LINEAGENT__Twilio__ConfirmTimeout", "00:00:00", "Twilio:ConfirmTimeout must be above 00:00:00")]
    [TestCase("LINEAGENT__Twilio__BaseUrl", "file:///etc/passwd", "Twilio:BaseUrl must be an absolute http or https URL")]
    [TestCase("LINEAGENT__Resilience__RetryBaseDelay", "-00:00:01", "Resilience:RetryBaseDelay must be between 00:00:00 and a day")]
    [TestCase("LINEAGENT__Resilience__SamplingDuration", "00:00:00", "Resilience:SamplingDuration must be between 00:00:00.5 and a day")]
    [TestCase("LINEAGENT__Email__Smtp__Timeout", "00:00:00", "Email:Smtp:Timeout must be between 00:00:01 and a day")]
    [TestCase("LINEAGENT__Email__Smtp__IdleTimeout", "-00:00:01", "Email:Smtp:IdleTimeout must not be negative")]
    [TestCase("LINEAGENT__Agent__DryRunSendDelay", "-00:00:01", "Agent:DryRunSendDelay must be between 00:00:00 and an hour")]
    [TestCase("LINEAGENT__Agent__ShutdownTimeout", "-00:00:01", "Agent:ShutdownTimeout must be between 00:00:00 and a day")]
    [TestCase("LINEAGENT__Bridge__ScriptTimeout", "12:00:00", "Bridge:ScriptTimeout must be above 00:00:00 and at most 11:00:00")]
    // A typo was taken and ignored: a live agent where a dry run was meant (probe I).
    [TestCase("LINEAGENT__Agent__DryRunn", "true", "unknown setting 'Agent:DryRunn' in the environment (LINEAGENT__Agent__DryRunn): Agent has no setting 'DryRunn'. Did you mean Agent:DryRun?")]
    [TestCase("LINEAGENT__Foo__Bar", "1", "unknown setting 'Foo:Bar' in the environment (LINEAGENT__Foo__Bar): no such section.")]
    public async Task ASettingTheAgentCannotUse_ShouldStopItWithOneLineNamingIt(string variable, string value, string expected)
    {
        using var dir = new TempDir();
        var dataDir = dir.File("new-data-dir");
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0"],
            new Dictionary<string, string?> { [variable] = value }, TimeSpan.FromSeconds(60));
        // Refused before anything is made: before, a new data dir with an empty database (and a token) was left behind.
        Assert.That(Directory.Exists(dataDir), Is.False, "no data dir left behind");

        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
        Assert.That(lines[0], Does.StartWith("lineagent: configuration: ").And.Contain(expected));
        Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at ").And.Not.Contain("Exception"));
        Assert.That(result.Stdout, Does.Not.Contain("Now listening"));
    }

    /// <summary>An address Kestrel cannot use: named, one line, exit 78, nothing made. Were "non-loopback ... set Api:Token", and with a token a stack trace (probe I).</summary>
    [TestCase("notaurl", "Api:Urls 'notaurl' is not an http:// address")]
    [TestCase("http://127.0.0.1:99999", "Api:Urls 'http://127.0.0.1:99999' has a port that is not a number from 0 to 65535")]
    public async Task AnAddressKestrelCannotUse_ShouldBeNamed(string urls, string expected)
    {
        using var dir = new TempDir();
        var dataDir = dir.File("new-data-dir");
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dataDir, "--urls", urls, "--Api:Token=abcdefabcdefabcdefabcdef"], timeout: TimeSpan.FromSeconds(60));
        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr + result.Stdout);
        Assert.That(result.Stderr.Trim(), Does.StartWith("lineagent: configuration: ").And.Contain(expected));
        Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at "));
        Assert.That(Directory.Exists(dataDir), Is.False, "nothing made");
    }

    /// <summary>`openapi` builds the agent's host without running it: the same refusal in one line, not "unexpected error" and a stack trace (review).</summary>
    [Test]
    public async Task OpenApi_WithAnUnknownSetting_ShouldSayOneLine()
    {
        using var dir = new TempDir();
        var result = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "openapi", "--data-dir", dir.Path],
            new Dictionary<string, string?> { ["LINEAGENT__Agent__DryRunn"] = "true" }, TimeSpan.FromSeconds(60));
        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr);
        Assert.That(result.Stderr.Trim(), Does.StartWith("lineagent: configuration: unknown setting 'Agent:DryRunn'").And.Not.Contain("   at "));
    }

    /// <summary>The binder stops at the first value it cannot convert; the agent names them all, in one line.</summary>
    [Test]
    public async Task ThreeSettingsThatDoNotConvert_ShouldAllBeNamed_InOneLine()
    {
        using var dir = new TempDir();
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path, "--urls", "http://127.0.0.1:0"],
            new Dictionary<string, string?>
            {
                ["LINEAGENT__Lines__0__Pacing__Window__Days__0"] = "Monday",
                ["LINEAGENT__Lines__0__Pacing__Window__Days__1"] = "Funday",
                ["LINEAGENT__Lines__0__Pacing__MinGap"] = "abc",
                ["LINEAGENT__Email__Smtp__Port"] = "",
                ["LINEAGENT__Lines__0__Pacing__MaxPerHour"] = "12",
            }, TimeSpan.FromSeconds(60));

        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
        Assert.That(lines[0], Does.StartWith("lineagent: configuration: ")
            .And.Contain("Email:Smtp:Port must be a whole number (set by LINEAGENT__Email__Smtp__Port")
            .And.Contain("Lines:0:Pacing:MinGap must be a duration")
            .And.Contain("Lines:0:Pacing:Window:Days:1 must be a day name"));
        Assert.That(lines[0], Does.Not.Contain("Days:0").And.Not.Contain("MaxPerHour"), "the values that convert are not named");
        Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at ").And.Not.Contain("Exception"));
    }

    /// <summary>
    /// The same when a bad value is in the Agent section: reading the data directory bound the whole section first and
    /// stopped at it, so only Agent:ShutdownTimeout was named (found by a new-user pass).
    /// </summary>
    [Test]
    public async Task BadValuesInTheAgentSectionAndAnother_ShouldAllBeNamed_InOneLine()
    {
        using var dir = new TempDir();
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path, "--urls", "http://127.0.0.1:0",
                "--Agent:ShutdownTimeout=abc", "--Agent:DryRunParallelSends=lots", "--Scheduling:MaxLateness=xyz"], timeout: TimeSpan.FromSeconds(60));

        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
        Assert.That(lines[0], Does.Contain("Agent:ShutdownTimeout must be a duration").And.Contain("Agent:DryRunParallelSends must be a whole number")
            .And.Contain("Scheduling:MaxLateness must be a duration"));
    }

    /// <summary>A lineagent.json that is not JSON: one line naming the file and where, exit 78; it was a 25-line stack trace.</summary>
    [TestCase("run")]
    [TestCase("doctor")]
    [TestCase("token")]
    public async Task ASettingsFileThatIsNotJson_ShouldSayOneLine_NamingItAndWhere(string command)
    {
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("lineagent.json"), "{\n  \"Agent\": { \"DryRun\": true\n");
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, command, "--data-dir", dir.Path, .. command == "run" ? new[] { "--dry-run", "--urls", "http://127.0.0.1:0" } : []],
            timeout: TimeSpan.FromSeconds(60));

        Assert.That(result.ExitCode, Is.EqualTo(78), result.Stderr);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
        Assert.That(lines[0], Does.StartWith($"lineagent: configuration: {dir.File("lineagent.json")} is not valid JSON at line 3"));
        Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at ").And.Not.Contain("Exception"));
    }

    /// <summary>JSON that is no settings object, and a bad value in the file for the CLI's commands: one line each (review).</summary>
    [TestCase("[1, 2]", "token", "cannot be used as settings: Top-level JSON element must be an object")]
    [TestCase("{\"Agent\": {\"DryRun\": true, \"DryRun\": false}}", "run", "cannot be used as settings: A duplicate key")]
    [TestCase("{\"Agent\": {\"ShutdownTimeout\": \"abc\"}}", "token", "No token yet")] // it reads only the data dir: no stack trace
    [TestCase("{\"Agent\": {\"ShutdownTimeout\": \"abc\"}}", "doctor", "Agent:ShutdownTimeout must be a duration")]
    // What only the validators `run` calls at start refuse: doctor passed them (new-user pass).
    [TestCase("{\"Agent\": {\"DefaultRegion\": \"ZZ\"}}", "doctor", "Agent:DefaultRegion 'ZZ' is not a region with phone numbers")]
    [TestCase("{\"Resilience\": {\"BreakDuration\": \"00:00:00.1\"}}", "doctor", "Resilience:BreakDuration must be between 00:00:00.5 and a day")]
    [TestCase("{\"Console\": {\"SessionIdleTimeout\": \"00:00:00\"}}", "doctor", "Console:SessionIdleTimeout")]
    [TestCase("{\"Lines\": [{\"Id\": \"mac\", \"Pacing\": {\"Window\": {\"From\": \"25:00\", \"To\": \"26:00\"}}}]}", "doctor",
        "Lines:mac:Pacing:Window:From '25:00' is not HH:mm")]
    // Keys that name no setting were taken and ignored: `"DryRunn": true` started a live agent (probe I). Every one is named.
    [TestCase("{\"Agent\": {\"DryRunn\": true, \"DefaultRegoin\": \"GB\"}, \"Logging\": {}, \"Lines\": []}", "run",
        "unknown setting 'Agent:DefaultRegoin' in lineagent.json: Agent has no setting 'DefaultRegoin'. Did you mean Agent:DefaultRegion? " +
        "unknown setting 'Agent:DryRunn' in lineagent.json: Agent has no setting 'DryRunn'. Did you mean Agent:DryRun?")]
    [TestCase("{\"Foo\": {\"Bar\": 1}}", "doctor", "unknown setting 'Foo:Bar' in lineagent.json: no such section.")]
    // Each section was told at another start (probe I): all at once.
    [TestCase("{\"Api\": {\"SendWaitSeconds\": -1}, \"Storage\": {\"BackupsKept\": -1}, \"Webhooks\": {\"GiveUpAfter\": \"00:01:00\"}}", "run",
        "Api:SendWaitSeconds must be between 0 and 600")]
    [TestCase("{\"Api\": {\"SendWaitSeconds\": -1}, \"Storage\": {\"BackupsKept\": -1}, \"Webhooks\": {\"GiveUpAfter\": \"00:01:00\"}}", "run",
        "BackupsKept")]
    [TestCase("{\"Api\": {\"SendWaitSeconds\": -1}, \"Storage\": {\"BackupsKept\": -1}, \"Webhooks\": {\"GiveUpAfter\": \"00:01:00\"}}", "run",
        "Webhooks:GiveUpAfter")]
    // Started, and failed the first email 500 invalid_sender (probe I).
    [TestCase("{\"Lines\": [{\"Id\": \"c\", \"Email\": {\"From\": \"not an email\"}}]}", "run", "Lines:0:Email:From 'not an email' is not an email address")]
    public async Task ASettingsFileTheAgentCannotUse_ShouldSayOneLine(string json, string command, string expected)
    {
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("lineagent.json"), json);
        var result = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, command, "--data-dir", dir.Path, .. command == "run" ? new[] { "--dry-run", "--urls", "http://127.0.0.1:0" } : []],
            timeout: TimeSpan.FromSeconds(60));

        Assert.That(result.Stderr + result.Stdout, Does.Contain(expected).And.Not.Contain("   at ").And.Not.Contain("Exception"), result.Stderr);
        Assert.That(result.ExitCode, Is.Not.EqualTo(0));
    }

    /// <summary>
    /// Also on the first one's port (the usual case: the same command twice): it is told another agent runs there, not that the
    /// port is in use, whose advice (another port) would only meet the lock (review of 805cbbc).
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public async Task ASecondAgentOnTheSameDataDir_ShouldSayOneLine(bool samePort)
    {
        using var dir = new TempDir();
        using var first = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var urls = samePort ? first.BaseAddress.ToString().TrimEnd('/') : "http://127.0.0.1:0";
        var second = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path, "--urls", urls], timeout: TimeSpan.FromSeconds(60));

        Assert.That(second.ExitCode, Is.EqualTo(78), second.Stderr);
        Assert.That(second.Stderr.Trim(), Does.Contain("another LineAgent is already running").And.Contain(dir.Path).And.Not.Contain("   at "));
    }

    /// <summary>
    /// agent.lock stays behind after a crash with a pid in it, like a stale pid file; deleted while an agent ran, a second one
    /// started beside it and sent its in-flight dry-run sends again (probe). The data directory itself is locked too.
    /// </summary>
    [Test]
    public async Task ASecondAgent_AfterTheLockFileWasDeleted_ShouldStillBeRefused_AndSoShouldARestore()
    {
        using var dir = new TempDir();
        using var first = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        File.Delete(Path.Combine(dir.Path, "agent.lock"));

        var second = await Programs.RunAsync("dotnet",
            [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path, "--urls", "http://127.0.0.1:0"], timeout: TimeSpan.FromSeconds(60));
        Assert.That(second.ExitCode, Is.EqualTo(78), second.Stderr + second.Stdout);
        Assert.That(second.Stderr.Trim(), Does.Contain("another LineAgent is already running").And.Contain(dir.Path));
        var restore = await Programs.LineAgentAsync("restore", "--data-dir", dir.Path, "--yes");
        Assert.That(restore.Stderr, Does.Contain($"An agent is running on {dir.Path}"), restore.Stdout + restore.Stderr);

        using var api = first.Api();
        Assert.That((await api.GetAsync("/api/status")).StatusCode, Is.EqualTo(System.Net.HttpStatusCode.OK), "the first agent runs on");
    }

    [Test]
    public async Task APortInUse_ShouldSayOneLine_NamingItAndTheWayOut()
    {
        using var dir = new TempDir();
        var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        try
        {
            var port = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
            var dataDir = dir.File("new-data-dir");
            var result = await Programs.RunAsync("dotnet",
                [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dataDir, "--urls", $"http://127.0.0.1:{port}"], timeout: TimeSpan.FromSeconds(60));

            Assert.That(result.ExitCode, Is.EqualTo(1), result.Stderr);
            Assert.That(Directory.Exists(dataDir), Is.False, "no data dir with an empty database left behind");
            var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
            Assert.That(lines[0], Does.Contain($"127.0.0.1:{port} is in use").And.Contain("--urls"));
            Assert.That(result.Stderr + result.Stdout, Does.Not.Contain("   at ").And.Not.Contain("Now listening"));
        }
        finally
        {
            holder.Stop();
        }
    }

    /// <summary>
    /// The port check is Kestrel's: an agent hosted on another server (the tests' in-memory one) listens on no port. With
    /// the README's agent running on the default port, every in-process test failed ("The server has not been started").
    /// </summary>
    [Test]
    public async Task AnInProcessAgent_ShouldStart_WhileSomethingHoldsTheDefaultPort()
    {
        var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 5117);
        try
        {
            holder.Start();
        }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            holder = null; // something holds it already: the same condition
        }
        try
        {
            using var agent = new AgentFactory();
            using var api = agent.Api();
            (await api.GetAsync("/api/status")).EnsureSuccessStatusCode();
        }
        finally
        {
            holder?.Stop();
        }
    }

    [Test]
    public async Task OnePropertyOfLine0FromTheEnvironment_ShouldKeepTheDefaultLine()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"],
            env: new Dictionary<string, string> { ["LINEAGENT__Lines__0__Name"] = "Office Mac" });
        using var api = agent.Api();
        var line = (await api.GetJsonAsync("/api/status"))["lines"]!.AsArray().Single()!;
        Assert.That((line.Str("id"), line.Str("name")), Is.EqualTo(("default", "Office Mac")));
    }
    [TestCase("/Users/ana/Library/Mobile Documents/com~apple~CloudDocs/LineAgent", "iCloud Drive")]
    [TestCase("/Users/ana/Library/CloudStorage/Dropbox/LineAgent", "a cloud storage folder (~/Library/CloudStorage)")]
    [TestCase("/Users/ana/Dropbox/agent", "a Dropbox folder")]
    [TestCase("/Users/ana/Library/Application Support/LineAgent", null)]
    [TestCase("/home/ana/.local/share/lineagent", null)]
    public void ADataDirInASyncedFolder_ShouldBeNamed(string path, string? synced)
    {
        // A sync service evicts, copies back or conflict-copies files under the agent: lineagent.db and its -wal too.
        Assert.That(LineAgent.Hosting.DataDirectory.SyncedFolder(path), Is.EqualTo(synced));
    }
}
