using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LineAgent.Bench;

/// <summary>Where the Release builds of the two programs are (written by the bench's build, bench-targets.txt).</summary>
public sealed record Targets(string AgentDll, string BareDll)
{
    public static Targets Locate()
    {
        var file = Path.Combine(AppContext.BaseDirectory, "bench-targets.txt");
        if (!File.Exists(file))
            throw new InvalidOperationException($"{file} is missing: run the bench with `dotnet run -c Release --project bench/LineAgent.Bench`.");
        var map = File.ReadAllLines(file).Where(l => l.Contains('='))
            .ToDictionary(l => Path.GetFileNameWithoutExtension(l[..l.IndexOf('=')]), l => l[(l.IndexOf('=') + 1)..].Trim());
        string Dll(string project) => map.TryGetValue(project, out var path) && File.Exists(path)
            ? path
            : throw new InvalidOperationException($"No build of {project} ({(map.TryGetValue(project, out var p) ? p : "not listed")} in {file}).");
        var agent = Environment.GetEnvironmentVariable("LINEAGENT_BENCH_AGENT") is { Length: > 0 } a ? Path.GetFullPath(a) : Dll("LineAgent");
        return new Targets(agent, Dll("BareKestrel"));
    }
}

/// <summary>The benchmark steps. Every agent is a fresh process on a fresh data directory, dry run, pacing off.</summary>
public sealed class Steps(BenchOptions o, Targets targets, string tempRoot, Report report, CancellationToken ct)
{
    private const string Token = "bench-token-0123456789abcdef";
    private static readonly MediaTypeHeaderValue Json = new("application/json") { CharSet = "utf-8" };
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private int _instances;

    private string NewDir(string name)
    {
        var dir = Path.Combine(tempRoot, $"{Interlocked.Increment(ref _instances):D2}-{name}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string[] DefaultLine => ["--Lines:0:Id=default", "--Lines:0:Pacing:Enabled=false"];

    private Task<Child> StartAgentAsync(string name, string dataDir, IEnumerable<string>? lines = null) =>
        Child.StartAsync(name, targets.AgentDll,
            ["run", "--dry-run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0", $"--Api:Token={Token}", .. lines ?? DefaultLine], ct);

    private Task<Child> StartBareAsync() => Child.StartAsync("bare", targets.BareDll, ["--urls", "http://127.0.0.1:0"], ct);

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", Inv);

    private static byte[] SendBody(long n, string scheduledAt) => JsonSerializer.SerializeToUtf8Bytes(new JsonObject
    {
        ["content"] = $"Benchmark message {n}: see you at the demo on Thursday",
        ["recipientPhone"] = $"+120255501{n % 100:D2}",
        ["scheduledAt"] = scheduledAt,
    });

    private static HttpRequestMessage Post(string path, byte[] body) =>
        new(HttpMethod.Post, path) { Content = new ByteArrayContent(body) { Headers = { ContentType = Json } } };

    /// <summary>POSTs <paramref name="count"/> messages, 32 at a time; returns (ids, errors, first error).</summary>
    private static async Task<(List<string> Ids, int Errors, string? FirstError)> PostManyAsync(HttpClient api, int count, Func<int, byte[]> body,
        CancellationToken ct)
    {
        var ids = new List<string>(count);
        var errors = 0;
        string? first = null;
        await Load.ForEachAsync(count, 32, async i =>
        {
            using var req = Post("/api/messages", body(i));
            using var resp = await api.SendAsync(req, ct);
            var text = await resp.Content.ReadAsStringAsync(ct);
            lock (ids)
            {
                if (resp.StatusCode == HttpStatusCode.Created)
                    ids.Add(JsonNode.Parse(text)!["id"]!.GetValue<string>());
                else
                {
                    errors++;
                    first ??= $"HTTP {(int)resp.StatusCode}: {text}";
                }
            }
        }, ct);
        return (ids, errors, first);
    }

    /// <summary>Every item of a paged list (limit 500, following nextCursor).</summary>
    private static async Task<List<JsonNode>> AllAsync(HttpClient api, string path, CancellationToken ct)
    {
        var items = new List<JsonNode>();
        string? cursor = null;
        do
        {
            var sep = path.Contains('?') ? '&' : '?';
            var url = $"{path}{sep}limit=500" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            var page = JsonNode.Parse(await api.GetStringAsync(url, ct))!;
            items.AddRange(page["items"]!.AsArray().Select(x => x!));
            cursor = page["nextCursor"]?.GetValue<string>();
        } while (cursor is not null);
        return items;
    }

    /// <summary>Waits until nothing is scheduled, queued or sending.</summary>
    private static async Task<bool> WaitDrainedAsync(HttpClient api, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var page = JsonNode.Parse(await api.GetStringAsync("/api/messages?status=scheduled,queued,sending&limit=1", ct))!;
            if (page["items"]!.AsArray().Count == 0) return true;
            await Task.Delay(200, ct);
        }
        return false;
    }

    private static DateTimeOffset Time(JsonNode? node) =>
        DateTimeOffset.Parse(node!.GetValue<string>(), Inv, DateTimeStyles.RoundtripKind);

    // 1 + 2: POST /api/messages under load, agent vs bare; peak RSS.
    public async Task ApiAsync()
    {
        Console.WriteLine($"\n[api] POST /api/messages (scheduled in 2030), {o.Connections} connections, {o.WarmupSeconds:0} s warm-up + {o.Seconds:0.#} s per target, " +
            $"measured in two halves: agent, bare, agent, bare (1 s warm-up before each second half)");
        await using var agent = await StartAgentAsync("agent", NewDir("api"));
        await using var bare = await StartBareAsync();
        var agentStartRss = agent.PeakRssKb();
        var bareStartRss = bare.PeakRssKb();
        agent.KeepSmaps("start");
        bare.KeepSmaps("start");
        var bodies = Enumerable.Range(0, 1000).Select(n => SendBody(n, "2030-01-01T00:00:00Z")).ToArray();

        var cpu = new Dictionary<string, TimeSpan>();
        async Task<LoadResult> Run(Child target, double warmupSeconds)
        {
            using var client = target.Client(Token, o.Connections, TimeSpan.FromSeconds(30));
            var cpuBefore = target.CpuTime();
            var r = await Load.RunAsync(client, n => Post("/api/messages", bodies[n % bodies.Length]), o.Connections,
                TimeSpan.FromSeconds(warmupSeconds), TimeSpan.FromSeconds(o.Seconds / 2), ct);
            cpu[target.Name] = cpu.GetValueOrDefault(target.Name) + (target.CpuTime() - cpuBefore);
            Console.WriteLine($"  {target.Name}: {r.Requests:N0} requests in {r.Seconds:0.#} s ({r.PerSecond:N0}/s), {r.Errors:N0} errors{(r.FirstError is null ? "" : $" (first: {Trim(r.FirstError)})")}");
            return r;
        }
        // Each target is measured in two halves, alternately: this VM's speed drifts within minutes (the bare app alone
        // measured 38,900-49,600 req/s in one hour), and one window each, one after the other, put that drift into the ratio.
        var a1 = await Run(agent, o.WarmupSeconds);
        var b1 = await Run(bare, o.WarmupSeconds);
        // A second's load before each second half: the target sat idle while the other was measured.
        var again = Math.Min(1, o.WarmupSeconds);
        var a = a1.Plus(await Run(agent, again));
        var b = b1.Plus(await Run(bare, again));
        // CPU per request over the whole run (warm-up included on both sides of the division).
        var cpuMs = new Dictionary<string, double>();
        foreach (var (name, r) in new[] { (agent.Name, a), (bare.Name, b) })
            if (r.AllRequests > 0)
                cpuMs[name] = cpu[name].TotalMilliseconds / r.AllRequests;
        double P(LoadResult r, double p) => Stats.Percentile(r.LatenciesMs, p);
        report.Add("POST /api/messages: requests/s", N(a.PerSecond, "N0"), N(b.PerSecond, "N0"), Report.Ratio(a.PerSecond, b.PerSecond));
        report.Add("POST /api/messages: errors", $"{a.Errors:N0} of {a.Requests:N0}", $"{b.Errors:N0} of {b.Requests:N0}");
        report.Add("POST /api/messages: latency p50", Report.Ms(P(a, 50)), Report.Ms(P(b, 50)), Report.Ratio(P(a, 50), P(b, 50)));
        report.Add("POST /api/messages: latency p99", Report.Ms(P(a, 99)), Report.Ms(P(b, 99)), Report.Ratio(P(a, 99), P(b, 99)));
        if (cpuMs.TryGetValue(agent.Name, out var ac) && cpuMs.TryGetValue(bare.Name, out var bc))
            report.Add("POST /api/messages: CPU per request (server process)", Report.Ms(ac), Report.Ms(bc), Report.Ratio(ac, bc));
        if (agentStartRss is { } s1 && bareStartRss is { } s2)
            report.Add("peak RSS at start (healthy, before any request)", Report.Mb(s1), Report.Mb(s2), Report.Ratio(s1, s2));
        agent.KeepSmaps("after-api");
        bare.KeepSmaps("after-api");
        if (agent.PeakRssKb() is { } r1 && bare.PeakRssKb() is { } r2)
            report.Add("peak RSS after the API run", Report.Mb(r1), Report.Mb(r2), Report.Ratio(r1, r2));
    }

    // 3: 1,000 messages due in the same second, twice on one agent: the first burst after start (its code paths
    // still being compiled), then the same again on the now warm agent (an agent that has been running).
    public async Task DueAsync()
    {
        var count = o.DueCount;
        Console.WriteLine($"\n[due] {count:N0} messages scheduled for the same second, twice on one fresh agent");
        // The bare figure: the same {count} outbox files written as the dry-run channel writes them (a temp file, written,
        // fsync, rename; 16 at a time, Agent:DryRunParallelSends' default) with no agent: what the hand-off alone costs on this disk.
        var bareOutbox = await BareOutboxSecondsAsync(NewDir("due-bare"), count, 16);
        Console.WriteLine($"  bare: {count:N0} outbox files in {bareOutbox:0.000} s");
        await using var agent = await StartAgentAsync("agent", NewDir("due"));
        using var api = agent.Client(Token, 32);
        foreach (var round in new[] { "first burst after start", "second burst (warm agent)" })
        {
            var now = DateTimeOffset.UtcNow;
            var t = DateTimeOffset.FromUnixTimeSeconds((long)Math.Ceiling((now + TimeSpan.FromSeconds(o.DueLeadSeconds)).ToUnixTimeMilliseconds() / 1000.0));
            var at = t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", Inv);
            var clock = Stopwatch.StartNew();
            var (ids, errors, first) = await PostManyAsync(api, count, i => SendBody(i, at), ct);
            var posting = clock.Elapsed.TotalSeconds;
            var posted = DateTimeOffset.UtcNow;
            Console.WriteLine($"  {round}: posted {ids.Count:N0} in {clock.Elapsed.TotalSeconds:0.00} s for T = {at}, {errors} errors{(first is null ? "" : $" (first: {Trim(first)})")}");
            if (posted > t)
                report.Note($"due, {round}: posting the {count:N0} messages ended {(posted - t).TotalSeconds:0.00} s after T; the lateness includes that.");
            if (!await WaitDrainedAsync(api, (t - DateTimeOffset.UtcNow) + TimeSpan.FromMinutes(5), ct))
                report.Note($"due, {round}: not every message was handed over within 5 minutes after T.");
            var mine = ids.ToHashSet();
            var sent = (await AllAsync(api, "/api/messages?status=sent", ct)).Where(m => mine.Contains(m["id"]!.GetValue<string>())).ToList();
            var failed = (await AllAsync(api, "/api/messages?status=failed", ct)).Where(m => mine.Contains(m["id"]!.GetValue<string>())).ToList();
            var times = sent.Select(m => Time(m["sentAt"])).ToList();
            var last = times.Count > 0 ? (times.Max() - t).TotalSeconds : double.NaN;
            var firstSent = times.Count > 0 ? (times.Min() - t).TotalSeconds : double.NaN;
            report.Add($"{count:N0} due at T, {round}: last handed over after T", Report.Seconds(last), Report.Seconds(bareOutbox),
                Report.Ratio(last, bareOutbox));
            if (posted > t && times.Count > 0)
                report.Add($"{count:N0} due at T, {round}: last handed over after the last POST", Report.Seconds((times.Max() - posted).TotalSeconds));
            report.Add($"{count:N0} due at T, {round}: first handed over after T", Report.Seconds(firstSent));
            report.Add($"{count:N0} due at T, {round}: sent / failed / POST errors", $"{sent.Count:N0} / {failed.Count:N0} / {errors:N0}");
            report.Add($"{count:N0} due at T, {round}: time to POST them (32 connections)", Report.Seconds(posting));
        }
    }

    private async Task<double> BareOutboxSecondsAsync(string dir, int count, int parallel)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new JsonObject
        {
            ["id"] = "msg_01JBENCH0000000000000000", ["type"] = "imessage", ["lineId"] = "default", ["to"] = "+12025550100",
            ["content"] = "Benchmark message 0: see you at the demo on Thursday", ["handedAt"] = DateTimeOffset.UtcNow, ["dryRun"] = true,
        }, new JsonSerializerOptions { WriteIndented = true });
        Directory.CreateDirectory(dir);
        var clock = Stopwatch.StartNew();
        // On threads of their own, as the channel writes them (BlockingFileWork): through the thread pool the figure was
        // mostly the pool's own slow start while its workers block in fsync (145-545 ms against 87-117 ms, README).
        var next = -1;
        var threads = Enumerable.Range(0, parallel).Select(_ => new Thread(() =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count && !ct.IsCancellationRequested)
            {
                var temp = Path.Combine(dir, $".msg_{i}.{Guid.NewGuid():N}.tmp");
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
                {
                    stream.Write(body);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, Path.Combine(dir, $"msg_{i}.bench.json"));
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        await Task.Run(() => threads.ForEach(t => t.Join()), ct);
        return clock.Elapsed.TotalSeconds;
    }

    // 4: sparse schedule, lateness.
    public async Task SparseAsync()
    {
        var count = o.SparseCount;
        Console.WriteLine($"\n[sparse] {count} messages at random times over {o.SparseSpreadSeconds:0} s, fresh agent");
        await using var agent = await StartAgentAsync("agent", NewDir("sparse"));
        using var api = agent.Client(Token, 32);
        var rng = new Random(4);
        var start = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5);
        var schedule = Enumerable.Range(0, count).Select(_ => Iso(start + TimeSpan.FromMilliseconds(rng.NextDouble() * o.SparseSpreadSeconds * 1000))).ToArray();
        var (ids, errors, first) = await PostManyAsync(api, count, i => SendBody(i, schedule[i]), ct);
        var posted = DateTimeOffset.UtcNow;
        if (posted > start)
            report.Note($"sparse: posting ended {(posted - start).TotalSeconds:0.00} s after the first schedule.");
        if (errors > 0)
            report.Note($"sparse: {errors} POST errors (first: {Trim(first!)})");
        await Task.Delay(start + TimeSpan.FromSeconds(o.SparseSpreadSeconds) - DateTimeOffset.UtcNow is { } wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero, ct);
        if (!await WaitDrainedAsync(api, TimeSpan.FromMinutes(2), ct))
            report.Note("sparse: not every message was handed over within 2 minutes after the last schedule.");
        var mine = ids.ToHashSet();
        var lateness = (await AllAsync(api, "/api/messages?status=sent", ct))
            .Where(m => mine.Contains(m["id"]!.GetValue<string>()))
            .Select(m => (Time(m["sentAt"]) - Time(m["scheduledAt"])).TotalMilliseconds).Order().ToArray();
        report.Add($"sparse ({count} over {o.SparseSpreadSeconds:0} s): lateness p50", Report.Ms(Stats.Percentile(lateness, 50)));
        report.Add($"sparse ({count} over {o.SparseSpreadSeconds:0} s): lateness p99", Report.Ms(Stats.Percentile(lateness, 99)));
        report.Add($"sparse ({count} over {o.SparseSpreadSeconds:0} s): lateness max", Report.Ms(lateness.Length > 0 ? lateness[^1] : double.NaN));
        if (lateness.Length != count)
            report.Note($"sparse: {lateness.Length} of {count} were sent.");
    }

    // 5: idle CPU with rows scheduled far ahead.
    public async Task IdleAsync()
    {
        Console.WriteLine($"\n[idle] CPU over {o.IdleSeconds:0} s with {o.IdleRows:N0} messages scheduled in 2030, fresh agent and bare app, each after the same {o.IdleRows:N0} POSTs");
        await using var agent = await StartAgentAsync("agent", NewDir("idle"));
        await using var bare = await StartBareAsync();
        using var api = agent.Client(Token, 32);
        var clock = Stopwatch.StartNew();
        var (ids, errors, first) = await PostManyAsync(api, o.IdleRows, i => SendBody(i, "2030-01-01T00:00:00Z"), ct);
        Console.WriteLine($"  stored {ids.Count:N0} in {clock.Elapsed.TotalSeconds:0.0} s, {errors} errors{(first is null ? "" : $" (first: {Trim(first)})")}");
        // The bare app gets the same requests, so both idle with the same code paths run (and the same tiered JIT to finish).
        using (var bareApi = bare.Client(Token, 32))
        {
            var (bareIds, bareErrors, _) = await PostManyAsync(bareApi, o.IdleRows, i => SendBody(i, "2030-01-01T00:00:00Z"), ct);
            Console.WriteLine($"  bare answered {bareIds.Count:N0}, {bareErrors} errors");
        }
        await Task.Delay(TimeSpan.FromSeconds(o.Quick ? 2 : 5), ct); // let the last requests and GC settle
        // Two windows: the first still holds the tail of tiered JIT for the code the load ran (its methods are
        // recompiled in the background once called often enough), the second is the agent as it idles for hours.
        foreach (var window in new[] { "first", "second" })
        {
            var a0 = agent.CpuTime();
            var b0 = bare.CpuTime();
            await Task.Delay(TimeSpan.FromSeconds(o.IdleSeconds), ct);
            var a = (agent.CpuTime() - a0).TotalSeconds / o.IdleSeconds * 100;
            var b = (bare.CpuTime() - b0).TotalSeconds / o.IdleSeconds * 100;
            report.Add($"idle CPU, {o.IdleRows:N0} scheduled in 2030 ({window} {o.IdleSeconds:0} s, % of one core)",
                a.ToString("0.00", Inv) + " %", b.ToString("0.00", Inv) + " %", Report.Ratio(a, b));
        }
    }

    // 6: history over a million messages.
    public async Task HistoryAsync()
    {
        Console.WriteLine($"\n[history] {o.HistoryRows:N0} messages, {o.HistoryRuns} runs per filter");
        var dir = NewDir("history");
        var lines = HistoryFill.Lines.SelectMany((id, i) => new[] { $"--Lines:{i}:Id={id}", $"--Lines:{i}:Pacing:Enabled=false" }).ToArray();
        await using (var creator = await StartAgentAsync("agent (schema)", dir, lines))
            await creator.StopAsync(TimeSpan.FromSeconds(30));
        var sample = HistoryFill.Fill(Path.Combine(dir, "lineagent.db"), o.HistoryRows, DateTimeOffset.UtcNow, ct);
        Console.WriteLine($"  filled in {sample.FillTime.TotalSeconds:0.0} s: {string.Join(", ", sample.ByStatus.OrderByDescending(x => x.Value).Select(x => $"{x.Key} {x.Value:N0}"))}");
        report.Add($"history: fill {sample.Rows:N0} rows (one transaction, then an FTS rebuild)", Report.Seconds(sample.FillTime.TotalSeconds));
        report.Add("history: database size", Report.Mb(sample.DbBytes / 1024));

        var clock = Stopwatch.StartNew();
        await using var agent = await StartAgentAsync("agent", dir, lines);
        report.Add($"history: agent start to healthy on {sample.Rows:N0} rows", Report.Seconds(clock.Elapsed.TotalSeconds));
        using var api = agent.Client(Token, 2);
        var day = sample.Day.ToString("yyyy-MM-dd", Inv);
        var next = sample.Day.AddDays(1).ToString("yyyy-MM-dd", Inv);
        (string Label, string Query)[] filters =
        [
            ("from/to (one day)", $"from={day}T00:00:00Z&to={next}T00:00:00Z"),
            ("recipient (substring)", $"recipient={sample.Recipient}"),
            ("q (word)", $"q={sample.Word}"),
            ("q (two words)", $"q={sample.Word}%20march"),
            ("q (a common word)", "q=the"),
            // No term of the index: read as text, newest first, until a page is found (every row when none matches).
            ("q (an emoji in some replies)", "q=%F0%9F%8E%89"),
            ("q (an emoji in no message)", "q=%F0%9F%A6%84"),
            ("status=failed", "status=failed"),
            ("type=sms", "type=sms"),
            ("lineId", $"lineId={sample.LineId}"),
            ("batchId", $"batchId={sample.BatchId}"),
        ];
        foreach (var (label, query) in filters)
        {
            var url = "/api/messages?" + query;
            var warm = JsonNode.Parse(await api.GetStringAsync(url, ct))!["items"]!.AsArray().Count;
            var times = new List<double>(o.HistoryRuns);
            for (var i = 0; i < o.HistoryRuns; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                using var resp = await api.GetAsync(url, HttpCompletionOption.ResponseContentRead, ct);
                resp.EnsureSuccessStatusCode();
                times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
            times.Sort();
            report.Add($"history: GET ?{label} ({warm} items) p50 / p95",
                $"{Report.Ms(Stats.Percentile(times, 50))} / {Report.Ms(Stats.Percentile(times, 95))}");
        }
        report.Note($"history filters used: {string.Join(" · ", filters.Select(f => f.Query))}");

        // type=auto asks what this agent's own history says of an address (delivered iMessage: blue; error 22: gray):
        // one full address at a time, each a different one (the agent keeps an answer for 10 s).
        var lookups = new List<double>(sample.Phones.Count);
        foreach (var phone in sample.Phones)
        {
            var t0 = Stopwatch.GetTimestamp();
            using var resp = await api.GetAsync("/api/availability?address=" + Uri.EscapeDataString(phone), HttpCompletionOption.ResponseContentRead, ct);
            resp.EnsureSuccessStatusCode();
            lookups.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        lookups.Sort();
        report.Add($"history: GET /api/availability?address= ({lookups.Count} different phones) p50 / p95",
            $"{Report.Ms(Stats.Percentile(lookups, 50))} / {Report.Ms(Stats.Percentile(lookups, 95))}");
    }

    // 7: bulk send to 10,000 leads.
    public async Task BulkAsync()
    {
        var n = o.BulkLeads;
        Console.WriteLine($"\n[bulk] import {n:N0} leads, then POST /api/messages/bulk to all of them (2030), fresh agent");
        await using var agent = await StartAgentAsync("agent", NewDir("bulk"));
        using var api = agent.Client(Token, 4, TimeSpan.FromMinutes(10));
        var csv = new StringBuilder("First Name,Last Name,Phone,Email,Company,Plan\n");
        for (var i = 0; i < n; i++)
            csv.Append(CultureInfo.InvariantCulture,
                $"Lead{i},Bench,+1415{300 + i / 10_000}{i % 10_000:D4},lead{i}@bench.example.com,Company {i % 500},{(i % 3 == 0 ? "pro" : "basic")}\n");
        var clock = Stopwatch.StartNew();
        using (var resp = await api.PostAsync("/api/leads/import?tags=bench", new StringContent(csv.ToString(), Encoding.UTF8, "text/csv"), ct))
        {
            var text = await resp.Content.ReadAsStringAsync(ct);
            if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"import: HTTP {(int)resp.StatusCode}: {Trim(text)}");
            var r = JsonNode.Parse(text)!;
            report.Add($"bulk: import {n:N0} leads (CSV)", Report.Seconds(clock.Elapsed.TotalSeconds));
            if (r["created"]!.GetValue<long>() != n)
                report.Note($"bulk: import created {r["created"]} and skipped {r["skipped"]} of {n:N0} rows.");
        }
        var leadIds = (await AllAsync(api, "/api/leads?tag=bench", ct)).Select(l => l["id"]!.GetValue<string>()).ToList();
        var body = JsonSerializer.SerializeToUtf8Bytes(new JsonObject
        {
            ["leadIds"] = new JsonArray(leadIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray()),
            ["content"] = "Hi {{firstName}}, a note for {{company|your team}} about the {{fields.plan|current}} plan.",
            ["scheduledAt"] = "2030-01-01T00:00:00Z",
        });
        // Twice on one agent, as the due step does: the first request after start pays for JIT and cold caches.
        foreach (var run in new[] { "first after start", "second (warm agent)" })
        {
            clock.Restart();
            using var bulkRequest = Post("/api/messages/bulk", body);
            using var resp = await api.SendAsync(bulkRequest, HttpCompletionOption.ResponseContentRead, ct);
            var elapsed = clock.Elapsed.TotalSeconds;
            var text = await resp.Content.ReadAsStringAsync(ct);
            if (resp.StatusCode != HttpStatusCode.Accepted) throw new InvalidOperationException($"bulk: HTTP {(int)resp.StatusCode}: {Trim(text)}");
            var r = JsonNode.Parse(text)!;
            report.Add($"bulk: POST /api/messages/bulk, {leadIds.Count:N0} leadIds, to the 202, {run}", Report.Seconds(elapsed));
            if (r["accepted"]!.GetValue<int>() != n)
                report.Note($"bulk ({run}): {r["accepted"]} accepted, {r["rejected"]} rejected of {leadIds.Count:N0}.");
        }
    }

    private static string N(double v, string format) => v.ToString(format, Inv);

    private static string Trim(string s) => s.Length > 300 ? s[..300] + "..." : s;
}
