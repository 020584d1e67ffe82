using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Batches;

/// <summary>
/// The agent as its own process: a 50,000-row CSV import streamed in, then a bulk send to 10,000 leads.
/// Asserts the counts; prints the times and the agent's peak resident memory (VmHWM) for the record.
/// </summary>
[Category("Scale")]
public sealed class ScaleTests
{
    [Test]
    public async Task Import50kRows_ThenBulkSendTo10kLeads()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run", "--Logging:LogLevel:Default=Warning"]);
        using var api = agent.Api();
        api.Timeout = TimeSpan.FromMinutes(5);
        var baseline = PeakKb(agent.Pid);

        var clock = Stopwatch.StartNew();
        var import = await (await api.PostAsync("/api/leads/import?tags=scale", new GeneratedCsv(50_000))).ExpectAsync(HttpStatusCode.OK);
        var importTime = clock.Elapsed;
        Assert.That(import["created"]!.GetValue<long>(), Is.EqualTo(50_000));
        Assert.That(import["skipped"]!.GetValue<long>(), Is.Zero);
        var afterImport = PeakKb(agent.Pid);

        var ids = new List<string>();
        string? cursor = null;
        while (ids.Count < 10_000)
        {
            var page = await api.GetJsonAsync("/api/leads?limit=500&tag=scale" + (cursor is null ? "" : "&cursor=" + cursor));
            ids.AddRange(page["items"]!.AsArray().Select(l => l.Str("id")));
            cursor = page.StrOrNull("nextCursor");
        }
        ids = ids.Take(10_000).ToList();

        clock.Restart();
        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = ids, content = "Hi {{firstName|there}}, a note for {{company}} about {{fields.Plan|your plan}}.", batchId = "batch_scale",
        })).ExpectAsync(HttpStatusCode.Accepted);
        var bulkTime = clock.Elapsed;
        Assert.That(bulk["accepted"]!.GetValue<int>(), Is.EqualTo(10_000));
        var afterBulk = PeakKb(agent.Pid);

        var batch = await api.GetJsonAsync("/api/batches/batch_scale");
        Assert.That(batch["total"]!.GetValue<int>(), Is.EqualTo(10_000));
        TestContext.Out.WriteLine(
            $"import 50,000 rows: {importTime.TotalSeconds:0.00} s ({50_000 / importTime.TotalSeconds:0} rows/s); " +
            $"bulk accept 10,000 leads: {bulkTime.TotalSeconds:0.00} s; agent peak RSS (VmHWM): start {baseline / 1024} MiB, " +
            $"after import {afterImport / 1024} MiB, after bulk {afterBulk / 1024} MiB");
    }

    private static long PeakKb(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status").Where(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])).Single();

    /// <summary>A CSV body written as it is sent, so the test does not hold 50,000 rows either.</summary>
    private sealed class GeneratedCsv : HttpContent
    {
        private readonly int rows;

        public GeneratedCsv(int rows)
        {
            this.rows = rows;
            Headers.ContentType = new("text/csv");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await using var writer = new StreamWriter(stream, new UTF8Encoding(false), 64 * 1024, leaveOpen: true);
            await writer.WriteLineAsync("First Name,Last Name,Mobile,Email,Company,Plan");
            for (var i = 0; i < rows; i++)
                await writer.WriteLineAsync($"Lead{i},Test,+1202{2000000 + i:0000000},lead{i}@example.com,Company {i % 97},plan{i % 5}");
            await writer.FlushAsync();
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
