using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>
/// Hostile and malformed input against a real agent (Kestrel on loopback): never a 5xx, every 4xx a problem+json
/// with a `code`, nothing stored, and the agent still answering afterwards. The fuzz run sends
/// LINEAGENT_FUZZ_COUNT requests (3,000 in the test run; set it higher for the long form).
/// </summary>
public sealed class HostileInputTests
{
    private TempDir _dir = null!;
    private AgentProcess _agent = null!;
    private HttpClient _api = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _dir = new TempDir();
        _agent = await AgentProcess.StartAsync(_dir.Path, args: ["--dry-run"]);
        _api = _agent.Api();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _api.Dispose();
        _agent.Dispose();
        _dir.Dispose();
    }

    private async Task<Dictionary<string, long>> CountsAsync()
    {
        var db = new Db(_dir.File("lineagent.db"));
        await using var c = await db.OpenAsync();
        var counts = new Dictionary<string, long>();
        foreach (var table in new[] { "messages", "leads", "suppressions", "webhooks", "idempotency_keys", "batch_rejections" })
            counts[table] = await c.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table}");
        return counts;
    }

    private static async Task<string> AssertProblemAsync(HttpResponseMessage response, string what)
    {
        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(status, Is.InRange(400, 499), $"{what}: HTTP {status} {body}");
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), $"{what}: {body}");
        var code = JsonNode.Parse(body)?["code"]?.GetValue<string>();
        Assert.That(code, Is.Not.Null.And.Not.Empty, $"{what}: no code in {body}");
        return code!;
    }

    /// <summary>A request with exactly this Content-Type, malformed ones included (no client-side validation).</summary>
    private static HttpRequestMessage Json(HttpMethod method, string path, string body, string contentType = "application/json")
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.Remove("Content-Type");
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return new HttpRequestMessage(method, path) { Content = content };
    }

    // ---- named regressions: each was a 500 -------------------------------------------------------------

    [TestCase("9999-12-31T23:00:00", "Pacific/Pago_Pago")]
    [TestCase("0001-01-01T00:30:00", "Pacific/Kiritimati")]
    [TestCase("9999-12-31T23:00:00-11:00", null)]
    public async Task ALocalScheduleOutsideTheYears1To9999InUtc_ShouldBe400(string at, string? zone)
    {
        var before = await CountsAsync();
        var code = await AssertProblemAsync(await _api.SendMessageAsync(new { content = "x", recipientPhone = "+12025550123", scheduledAt = at, timeZone = zone }), at);
        Assert.That(code, Is.EqualTo("invalid_schedule"));
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [Test]
    public async Task ANullTag_ShouldBe400()
    {
        var code = await AssertProblemAsync(await _api.PostAsync("/api/leads",
            new StringContent("""{"firstName":"Ana","phone":"+12025550123","tags":[null]}""", Encoding.UTF8, "application/json")), "tags [null]");
        Assert.That(code, Is.EqualTo("invalid_tags"));
    }

    /// <summary>Review: two `address` values arrived joined and were answered "'+1...,+1...' is not a phone number".</summary>
    [Test]
    public async Task AnAddressGivenTwice_ShouldBe400SayingSo()
    {
        var response = await _api.GetAsync("/api/availability?address=%2B12025550123&address=%2B12025550124");
        Assert.That(await AssertProblemAsync(response, "address twice"), Is.EqualTo("invalid_query"));
        var again = await _api.GetAsync("/api/availability?address=%2B12025550123&address=%2B12025550124");
        Assert.That(await again.Content.ReadAsStringAsync(), Does.Contain("given 2 times").And.Contain("POST /api/availability"));
    }

    [TestCase("/api/messages?q=a%00b")]
    [TestCase("/api/leads?q=a%00b")]
    [TestCase("/api/messages/export?q=a%00b")]
    [TestCase("/api/messages?recipient=%01")]
    public async Task ANulInTheQueryString_ShouldBe400NamingTheParameter(string url)
    {
        var response = await _api.GetAsync(url);
        Assert.That(await AssertProblemAsync(response, url), Is.EqualTo("invalid_query"));
    }

    [TestCase("/api/leads?limit=abc", "limit", "invalid_query")]
    [TestCase("/api/leads?limit=1.5", "limit", "invalid_query")]
    [TestCase("/api/suppressions?limit=abc", "limit", "invalid_query")]
    [TestCase("/api/suppressions?limit=99999999999", "limit", "invalid_filter")]
    [TestCase("/api/leads?limit=5&limit=6", "limit", "invalid_query")]
    [TestCase("/api/webhooks/wh_none/deliveries?limit=x", "limit", "invalid_query")]
    // A misspelt history filter used to list (or export) every message.
    [TestCase("/api/messages?search=demo", "search", "unknown_parameter")]
    [TestCase("/api/messages?stauts=failed&limit=5", "stauts", "unknown_parameter")]
    [TestCase("/api/messages/export?limit=5", "limit", "unknown_parameter")]
    [TestCase("/api/leads?tags=zzz", "tags", "unknown_parameter")]
    [TestCase("/api/suppressions?foo=1", "foo", "unknown_parameter")]
    [TestCase("/api/webhooks/wh_none/deliveries?max=5", "max", "unknown_parameter")]
    // Given twice, a filter that takes one value arrived joined ("ana,demo") and matched nothing, silently.
    [TestCase("/api/messages?q=ana&q=demo", "q", "invalid_query")]
    [TestCase("/api/messages?limit=1&limit=2", "limit", "invalid_query")]
    [TestCase("/api/messages?recipient=0199&recipient=0123", "recipient", "invalid_query")]
    [TestCase("/api/messages/export?format=csv&format=ndjson", "format", "invalid_query")]
    [TestCase("/api/messages?status=snet", "status", "invalid_filter")]
    [TestCase("/api/messages?status=SENT,snet", "status", "invalid_filter")]
    public async Task AQueryValueOfTheWrongTypeOrAnUnknownParameter_ShouldBe400NamingIt(string url, string parameter, string code)
    {
        var response = await _api.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(await AssertProblemAsync(response, url), Is.EqualTo(code), body);
        Assert.That(JsonNode.Parse(body)!["problems"]![0]!["field"]!.GetValue<string>(), Is.EqualTo(parameter), body);
    }

    /// <summary>
    /// A setting put in the query string instead of the body was ignored and the message went out at once: a schedule
    /// (`?scheduledAt=2030-...` sent now), a dry run of a bulk (`?dryRun=true` sent for real). Found by a new-user pass.
    /// </summary>
    [TestCase("/api/messages?scheduledAt=2030-01-01T09:00:00Z", """{"content":"See you Friday","recipientPhone":"+12025550123"}""", "scheduledAt")]
    [TestCase("/api/messages/bulk?dryRun=true", """{"leadFilter":{},"content":"Hi {{firstName|there}}"}""", "dryRun")]
    [TestCase("/api/leads?foo=1", """{"firstName":"Ana","phone":"+12025550123"}""", "foo")]
    public async Task AQueryParameterOnARouteThatTakesNone_ShouldBe400NamingIt_AndNothingStoredOrSent(string url, string body, string parameter)
    {
        var before = await CountsAsync();
        var response = await _api.SendAsync(Json(HttpMethod.Post, url, body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(await AssertProblemAsync(response, url), Is.EqualTo("validation_failed").Or.EqualTo("unknown_parameter"), text);
        var problem = JsonNode.Parse(text)!["problems"]!.AsArray().Single();
        Assert.That((problem!["field"]!.GetValue<string>(), problem["code"]!.GetValue<string>()), Is.EqualTo((parameter, "unknown_parameter")), text);
        Assert.That(await CountsAsync(), Is.EqualTo(before), "nothing stored");
        var outbox = Path.Combine(_dir.Path, "outbox");
        Assert.That(Directory.Exists(outbox) ? Directory.GetFiles(outbox, "*", SearchOption.AllDirectories) : [], Is.Empty, "nothing sent");
    }

    /// <summary>
    /// Every problem of a body is named up to a cap: 500,000 wrong items in a 1 MB body answered 113 MB of problems after
    /// 7 s (review). And a method the route does not have stays a 405 with a query string (it became a 400).
    /// </summary>
    [Test]
    public async Task ABodyWithThousandsOfProblems_ShouldNameTheFirst50AndSaySo_AndAWrongMethodShouldStayA405()
    {
        var body = "{\"content\":\"hi\",\"leadIds\":[" + string.Join(",", Enumerable.Repeat("1", 20_000)) + "]}";
        var response = await _api.SendAsync(Json(HttpMethod.Post, "/api/messages/bulk", body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.That((int)response.StatusCode, Is.EqualTo(400), text[..Math.Min(500, text.Length)]);
        var problems = JsonNode.Parse(text)!["problems"]!.AsArray();
        Assert.That(problems, Has.Count.EqualTo(51), text[..Math.Min(500, text.Length)]);
        Assert.That(problems.Take(50).Select(p => p!["field"]!.GetValue<string>()), Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"leadIds[{i}]")));
        Assert.That(problems[50]!["code"]!.GetValue<string>(), Is.EqualTo("more_problems"));
        Assert.That(text.Length, Is.LessThan(50_000));

        using var wrongMethod = await _api.SendAsync(new HttpRequestMessage(HttpMethod.Delete, "/api/status?x=1"));
        Assert.That((int)wrongMethod.StatusCode, Is.EqualTo(405));
    }

    /// <summary>Every route of the OpenAPI document names a query parameter it does not take, whatever else is wrong.</summary>
    [Test]
    public async Task EveryRoute_ShouldNameAQueryParameterItDoesNotTake()
    {
        var document = JsonNode.Parse(await _api.GetStringAsync("/openapi/v1.json"))!;
        var checkedRoutes = new List<string>();
        foreach (var (path, operations) in document["paths"]!.AsObject())
        {
            if (!path.StartsWith("/api/", StringComparison.Ordinal))
                continue;
            foreach (var (method, _) in operations!.AsObject())
            {
                if (method is "parameters")
                    continue;
                var url = System.Text.RegularExpressions.Regex.Replace(path, "{[^}]+}", "x") + "?zzz=1";
                var request = method is "get" or "delete" ? new HttpRequestMessage(new HttpMethod(method.ToUpperInvariant()), url)
                    : path == "/api/leads/import" ? Json(HttpMethod.Post, url, "phone\n", "text/csv")
                    : Json(new HttpMethod(method.ToUpperInvariant()), url, "{}");
                using var response = await _api.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                var text = await response.Content.ReadAsStringAsync();
                Assert.That((int)response.StatusCode, Is.EqualTo(400), $"{method} {url}: {text}");
                var problems = JsonNode.Parse(text)!["problems"]!.AsArray();
                Assert.That(problems.Any(p => p!["field"]!.GetValue<string>() == "zzz" && p["code"]!.GetValue<string>() == "unknown_parameter"),
                    Is.True, $"{method} {url}: {text}");
                checkedRoutes.Add($"{method} {path}");
            }
        }
        Assert.That(checkedRoutes, Has.Count.GreaterThan(35), string.Join(", ", checkedRoutes));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task AnImportLargerThanTheBodyLimit_ShouldBe413_AndStoreNone_OfTheRowsReadBeforeIt(bool multipart)
    {
        // 31 MB of good rows, chunked (no Content-Length): Kestrel stops the body at 30,000,000 bytes, after some
        // 600,000 rows were read. Written 500 at a time as they were read, they stayed stored; staged, none is. A raw
        // socket reads the answer while it writes, as curl does (HttpClient reports the closed upload instead).
        var before = await CountsAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _agent.BaseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /api/leads/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_agent.Token}\r\n" +
            (multipart ? "Content-Type: multipart/form-data; boundary=XX\r\n" : "Content-Type: text/csv\r\n") +
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
        if (multipart)
        {
            // The web console uploads this way: the file part, never closed before the limit.
            var head = "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n"u8.ToArray();
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"{head.Length:X}\r\n"));
            await stream.WriteAsync(head);
            await stream.WriteAsync("\r\n"u8.ToArray());
        }
        var csv = new GeneratedCsv(31_000_000);
        var upload = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                int n;
                while ((n = csv.Read(buffer, 0, buffer.Length)) > 0)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"{n:X}\r\n"));
                    await stream.WriteAsync(buffer.AsMemory(0, n));
                    await stream.WriteAsync("\r\n"u8.ToArray());
                }
                await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
            }
            catch (IOException)
            {
                // The agent closed the upload after its answer.
            }
        });
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await upload.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(answer, Does.StartWith("HTTP/1.1 413 "), answer.Length > 500 ? answer[..500] : answer);
        Assert.That(answer, Does.Contain("\"code\":\"payload_too_large\""));
        Assert.That(csv.Position, Is.GreaterThan(1_000_000), "rows were read before the limit");
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    /// <summary>A CSV of distinct valid leads, generated as it is read.</summary>
    private sealed class GeneratedCsv(long length) : Stream
    {
        private byte[] _pending = Encoding.ASCII.GetBytes("First Name,Phone\n");
        private int _at;
        private long _row;
        private long _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= length)
                return 0;
            if (_at == _pending.Length)
            {
                _row++;
                _pending = Encoding.ASCII.GetBytes($"L{_row},+1415{2000000 + _row % 8000000:D7}\n");
                _at = 0;
            }
            var n = (int)Math.Min(Math.Min(count, _pending.Length - _at), length - _position);
            Array.Copy(_pending, _at, buffer, offset, n);
            _at += n;
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [TestCase("/api/leads/import", null, null, "unsupported_media_type", "Content-Type")]
    [TestCase("/api/leads/import", "application/json", null, "unsupported_media_type", "Content-Type")]
    [TestCase("/api/leads/import", "text/csv", "gzip", "unsupported_encoding", "uncompressed")]
    [TestCase("/api/messages", "application/json", "gzip", "unsupported_encoding", "uncompressed")]
    [TestCase("/api/messages", "text/plain", null, "unsupported_media_type", "Content-Type")]
    [TestCase("/api/messages", null, null, "unsupported_media_type", "Content-Type")]
    // An unknown charset on a JSON route was a 500 (the framework's transcoding); the API reads UTF-8 only.
    [TestCase("/api/messages", "application/json; charset=foo", null, "unsupported_charset", "UTF-8")]
    [TestCase("/api/messages", "application/json; charset=utf-16", null, "unsupported_charset", "UTF-8")]
    [TestCase("/api/leads/import", "text/csv; charset=windows-1252", null, "unsupported_charset", "UTF-8")]
    public async Task ABodyOfTheWrongTypeEncodingOrCharset_ShouldBe415_SayingWhatToSend(string path, string? type, string? encoding, string code, string hint)
    {
        var before = await CountsAsync();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(path.EndsWith("import") ? "phone\n+12025550123\n" : """{"content":"x","recipientPhone":"+12025550123"}"""));
        if (type is not null) content.Headers.TryAddWithoutValidation("Content-Type", type);
        if (encoding is not null) content.Headers.ContentEncoding.Add(encoding);
        using var response = await _api.PostAsync(path, content);
        var body = await response.Content.ReadAsStringAsync();
        Assert.That((int)response.StatusCode, Is.EqualTo(415), body);
        Assert.That(JsonNode.Parse(body)!["code"]!.GetValue<string>(), Is.EqualTo(code), body);
        Assert.That(JsonNode.Parse(body)!["detail"]?.GetValue<string>(), Does.Contain(hint), body);
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [TestCase("http://127.0.0.1:5977/a\r\nX-Injected: yes", "control")]
    [TestCase("http://127.0.0.1:5977/a b", "spaces")]
    [TestCase("http://127.0.0.1:0/hook", "port")]
    [TestCase("http://127.0.0.1:5977/hook#part", "fragment")]
    public async Task AWebhookUrlWithControlCharactersSpacesOrPort0_ShouldBe400(string url, string expected)
    {
        var before = await CountsAsync();
        var response = await _api.PostAsJsonAsync("/api/webhooks", new { url });
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(await AssertProblemAsync(response, url), Is.EqualTo("invalid_webhook_url"), body);
        Assert.That(body, Does.Contain(expected));
        Assert.That(LineAgent.Webhooks.WebhookTargetGuard.UrlProblem("http://127.0.0.1:5977/a b", out _), Is.Null,
            "checked when a subscription is made: one stored before still delivers");
        var longUrl = await _api.PostAsJsonAsync("/api/webhooks", new { url = "http://127.0.0.1:5977/" + new string('a', 3_000) });
        Assert.That(await AssertProblemAsync(longUrl, "3,000 characters"), Is.EqualTo("invalid_webhook_url"));
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [Test]
    public async Task ARetryWithAForceThatIsNotTrueOrFalse_ShouldBe400()
    {
        var response = await _api.PostAsync("/api/messages/msg_none/retry?force=maybe", null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(await AssertProblemAsync(response, "force=maybe"), Is.EqualTo("invalid_query"), body);
        Assert.That(body, Does.Contain("'force' must be true or false"));
    }

    [Test]
    public async Task TheRightTokenWithoutBearer_ShouldBeToldTheHeaderFormat()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/status");
        request.Headers.TryAddWithoutValidation("Authorization", _agent.Token);
        using var bare = new HttpClient { BaseAddress = _agent.BaseAddress };
        var response = await bare.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("the word Bearer, a space, then the token"));
    }

    [Test]
    public async Task BrokenMultipartUploads_ShouldBe400()
    {
        var noBoundary = Json(HttpMethod.Post, "/api/leads/import", "abc", "multipart/form-data");
        Assert.That(await AssertProblemAsync(await _api.SendAsync(noBoundary), "no boundary"), Is.EqualTo("invalid_upload"));

        var truncated = Json(HttpMethod.Post, "/api/leads/import",
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nphone\r\n+1202", "multipart/form-data; boundary=XX");
        Assert.That(await AssertProblemAsync(await _api.SendAsync(truncated), "truncated"), Is.EqualTo("invalid_upload"));

        var many = new StringBuilder();
        for (var i = 0; i < 1100; i++)
            many.Append($"--XX\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n");
        many.Append("--XX--\r\n");
        var tooMany = Json(HttpMethod.Post, "/api/leads/import", many.ToString(), "multipart/form-data; boundary=XX");
        Assert.That(await AssertProblemAsync(await _api.SendAsync(tooMany), "1,100 parts"), Is.EqualTo("invalid_upload"));
    }

    // ---- work that grew faster than the input (found by a security review) -------------------------------

    [TestCase("/api/messages/bulk/preview")]
    [TestCase("/api/messages/bulk")]
    [TestCase("/api/console/preview")]
    public async Task AMegabyteTemplateOfUnclosedPlaceholders_ShouldBe400_BeforeAnyTemplateWork(string path)
    {
        // A backtracking placeholder match scanned from every "{{a." to the end of the text: quadratic, hours for 1 MB.
        var before = await CountsAsync();
        var content = string.Concat(Enumerable.Repeat("{{a.b", 200_000));
        var response = await _api.PostAsJsonAsync(path, new { content, leadIds = new[] { "lead_00000000000000000000000000" } });
        Assert.That(await AssertProblemAsync(response, path), Is.EqualTo("invalid_content"));
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [Test]
    public async Task ACsvWiderThan200Columns_ShouldBe400_AndImportNothing()
    {
        var before = await CountsAsync();
        var header = string.Join(",", Enumerable.Repeat("a", 300_000)); // the same name 300,000 times: the renaming was quadratic
        var csv = $"phone,{header}\n+12025550123\n";
        var response = await _api.PostAsync("/api/leads/import", new StringContent(csv, Encoding.UTF8, "text/csv"));
        Assert.That(await AssertProblemAsync(response, "300,001 columns"), Is.EqualTo("too_many_columns"));
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [Test]
    public async Task RowsWithManyBadFields_ShouldBeSkippedWithShortReasons()
    {
        // 150 field names of 101 characters: each row has 150 bad fields (and more than 100), one short reason per row.
        var names = Enumerable.Range(0, 150).Select(i => $"c{i:D3}" + new string('x', 97)).ToList();
        var csv = new StringBuilder("phone," + string.Join(",", names) + "\n");
        for (var r = 0; r < 20; r++)
            csv.Append($"+120255501{r:D2},").Append(string.Join(",", Enumerable.Repeat("v", names.Count))).Append('\n');
        var result = await (await _api.PostAsync("/api/leads/import", new StringContent(csv.ToString(), Encoding.UTF8, "text/csv")))
            .ExpectAsync(HttpStatusCode.OK);
        Assert.That((result["rows"]!.GetValue<long>(), result["skipped"]!.GetValue<long>()), Is.EqualTo((20L, 20L)));
        var reasons = result["skippedRows"]!.AsArray().Select(s => s.Str("reason")).ToList();
        Assert.That(reasons, Has.All.Length.LessThanOrEqualTo(500));
        Assert.That(reasons[0], Does.Contain("At most 100 fields").And.Contain("and 147 more"));
    }

    /// <summary>Probe N: a subject with a C1 control (U+0085, a next line), U+2028 or a bell was taken; recipientName refused them.</summary>
    [TestCase("Hello\u0085there")]
    [TestCase("Hello\u2028there")]
    [TestCase("Hello\u0007there")]
    [TestCase("Hello\u007Fthere")]
    public async Task ASubjectWithAControlCharacter_ShouldBe400NamingIt(string subject)
    {
        var response = await _api.SendMessageAsync(new { content = "x", recipientEmail = "ana@example.com", subject });
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(await AssertProblemAsync(response, subject), Is.EqualTo("invalid_subject"), body);
        var bulk = await _api.PostAsJsonAsync("/api/messages/bulk", new { content = "x", subject, type = "email", leadIds = new[] { "lead_00000000000000000000000000" } });
        Assert.That(await bulk.Content.ReadAsStringAsync(), Does.Contain("invalid_subject"));
        var tab = await _api.SendMessageAsync(new { content = "x", recipientEmail = "ana@example.com", subject = "Hello\tthere" });
        Assert.That(tab.StatusCode, Is.EqualTo(HttpStatusCode.Created), "a tab is whitespace a header may hold");
    }

    /// <summary>
    /// q's maxLength of 500 is counted as the contract counts it (JSON Schema: code points): 251 emoji (502 UTF-16 units)
    /// were refused as longer than 500 characters (probe N).
    /// </summary>
    [TestCase("/api/messages?q=")]
    [TestCase("/api/leads?q=")]
    public async Task AQueryOf500CodePoints_ShouldBeTaken_AndOf501Refused(string path)
    {
        var emoji250 = string.Concat(Enumerable.Repeat("\U0001F600", 250));
        Assert.That((await _api.GetAsync(path + Uri.EscapeDataString(emoji250))).StatusCode, Is.EqualTo(HttpStatusCode.OK), "250 emoji");
        Assert.That((await _api.GetAsync(path + Uri.EscapeDataString(emoji250 + emoji250[..2]))).StatusCode, Is.EqualTo(HttpStatusCode.OK),
            "251 emoji: 251 code points, 502 UTF-16 units");
        Assert.That(await AssertProblemAsync(await _api.GetAsync(path + new string('a', 501)), "501 letters"), Is.EqualTo("invalid_filter"));
    }

    [Test]
    public async Task AQueryOfMoreThan16Words_ShouldBe400()
    {
        var words17 = string.Join("%20", Enumerable.Range(0, 17).Select(i => ((char)('a' + i)).ToString()));
        Assert.That(await AssertProblemAsync(await _api.GetAsync("/api/messages?q=" + words17), "17 words"), Is.EqualTo("invalid_filter"));
        Assert.That(await AssertProblemAsync(await _api.GetAsync("/api/messages/export?q=" + words17), "export, 17 words"), Is.EqualTo("invalid_filter"));
        var words16 = string.Join("%20", Enumerable.Range(0, 16).Select(i => ((char)('a' + i)).ToString()));
        Assert.That((await _api.GetAsync("/api/messages?q=" + words16)).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // 16 decomposed "résumé": combining accents continue a term, so 16 terms, not 48.
        var accented = string.Join("%20", Enumerable.Repeat(Uri.EscapeDataString("re\u0301sume\u0301"), 16));
        Assert.That((await _api.GetAsync("/api/messages?q=" + accented)).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // One "word" the tokenizer splits into 40 terms.
        var parts40 = string.Join(".", Enumerable.Range(0, 40).Select(i => ((char)('a' + i % 26)).ToString()));
        Assert.That(await AssertProblemAsync(await _api.GetAsync("/api/messages?q=" + parts40), "40 parts"), Is.EqualTo("invalid_filter"));
    }

    [Test]
    public async Task RetryWithABodyItDoesNotUnderstand_ShouldBe400_AndCreateNothing()
    {
        var before = await CountsAsync();
        var response = await _api.SendAsync(Json(HttpMethod.Post, "/api/messages/msg_00000000000000000000000000/retry", """{"content":"other"}"""));
        Assert.That(await AssertProblemAsync(response, "retry body"), Is.EqualTo("invalid_body"));
        Assert.That(await CountsAsync(), Is.EqualTo(before));
    }

    [Test]
    public async Task TheFrameworksOwn4xx_ShouldCarryACode()
    {
        Assert.That(await AssertProblemAsync(await _api.SendAsync(Json(HttpMethod.Post, "/api/messages", "x", "text/plain")), "415"),
            Is.EqualTo("unsupported_media_type"));
        Assert.That(await AssertProblemAsync(await _api.SendAsync(new HttpRequestMessage(HttpMethod.Delete, "/api/messages")), "405"),
            Is.EqualTo("method_not_allowed"));
    }

    /// <summary>Kestrel refuses these before the app runs; the answer still is a problem with a code.</summary>
    [TestCase("GET /api/messages%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400)]
    [TestCase("GET /api/messages HTTP/1.1\r\nHost: x\r\nX-Bad header without a colon\r\nConnection: close\r\n\r\n", 400)]
    [TestCase("LONGPATH", 414)]
    [TestCase("BIGHEADER", 431)]
    public async Task KestrelsOwnRefusals_ShouldBeProblemJsonWithACode(string request, int status)
    {
        request = request switch
        {
            "LONGPATH" => $"GET /api/{new string('a', 20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "BIGHEADER" => $"GET /api/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {new string('a', 40_000)}\r\n\r\n",
            _ => request,
        };
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _agent.BaseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.That(answer, Does.StartWith($"HTTP/1.1 {status} "));
        Assert.That(answer, Does.Contain("Content-Type: application/problem+json"));
        var body = JsonNode.Parse(answer[(answer.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..])!;
        Assert.That(body["status"]!.GetValue<int>(), Is.EqualTo(status));
        Assert.That(body["code"]!.GetValue<string>(), Is.Not.Empty);
    }

    // ---- the fuzz run ------------------------------------------------------------------------------------

    [Test]
    public async Task ThousandsOfMalformedRequests_ShouldGetNo5xx_OnlyProblemsWithACode_AndStoreNothing()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("LINEAGENT_FUZZ_COUNT"), out var n) ? n : 3000;
        var before = await CountsAsync();
        var fuzz = new Fuzz(new Random(20261204));
        var codes = new Dictionary<string, int>();
        var failures = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var (request, what) = fuzz.Next();
            using (request)
            {
                using var response = await _api.SendAsync(request);
                var status = (int)response.StatusCode;
                var body = await response.Content.ReadAsStringAsync();
                var code = status is >= 400 and < 500 && response.Content.Headers.ContentType?.MediaType == "application/problem+json"
                    ? JsonNode.Parse(body)?["code"]?.GetValue<string>()
                    : null;
                if (code is null)
                    failures.Add($"{what} → HTTP {status} {(body.Length > 300 ? body[..300] : body)}");
                else
                    codes[code] = codes.GetValueOrDefault(code) + 1;
            }
        }
        TestContext.Out.WriteLine($"{count} requests; codes: {string.Join(", ", codes.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}"))}");
        Assert.That(failures, Is.Empty, $"{failures.Count} answers were not a 4xx problem with a code:\n{string.Join("\n", failures.Take(10))}");
        Assert.That(await CountsAsync(), Is.EqualTo(before), "a malformed request stored something");
        Assert.That(await _api.GetStringAsync("/healthz"), Is.EqualTo("ok"));
        await (await _api.SendMessageAsync(new { content = "still alive", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
    }

    /// <summary>
    /// Requests that are wrong by construction: each starts from a valid body, gets one change that must be
    /// refused (from a list per route), then random noise on the other fields.
    /// </summary>
    private sealed class Fuzz(Random random)
    {
        private static readonly JsonNode?[] Noise =
        [
            null, "", " ", "\u0000", "\u0001\u0002", "'; DROP TABLE messages; --", "%s%n", new string('x', 20_000), "😀", "\u202E", "=HYPERLINK(\"x\")",
            0, -1, long.MaxValue, 1e308, true, false, new JsonArray(), new JsonArray(null, 1, "a"), new JsonObject { ["a"] = new JsonObject() },
            "2026-13-40T25:61:61Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "+", "+1", "@", "a@", "@b", "ftp://x",
        ];

        private static readonly string[] BadIds = ["msg_nope", "%00", "..%2F..%2Fetc", "%E2%80%AE", new string('9', 300), "lead_%3Cscript%3E", "%20"];

        public (HttpRequestMessage Request, string What) Next()
        {
            var routes = Routes();
            var (name, make) = routes[random.Next(routes.Length)];
            var (request, detail) = make();
            return (request, $"{name}: {detail}");
        }

        private JsonNode? Pick(JsonNode?[] values) => values[random.Next(values.Length)]?.DeepClone();

        private T Pick<T>(T[] values) => values[random.Next(values.Length)];

        /// <summary>A valid body, one breaking change, noise on up to three other fields.</summary>
        private (HttpRequestMessage, string) Body(HttpMethod method, string path, JsonObject valid, (string Field, JsonNode?[] Bad)[] breakers)
        {
            var (field, bad) = Pick(breakers);
            var body = (JsonObject)valid.DeepClone();
            body[field] = Pick(bad);
            var others = valid.Select(kv => kv.Key).Where(k => k != field).ToList();
            for (var i = random.Next(4); i > 0 && others.Count > 0; i--)
            {
                var k = others[random.Next(others.Count)];
                others.Remove(k);
                if (random.Next(5) == 0) body.Remove(k);
                else if (random.Next(3) == 0) body[k] = Pick(Noise);
            }
            var text = body.ToJsonString();
            var form = random.Next(10);
            if (form == 0) text = text[..random.Next(1, Math.Max(2, text.Length))]; // truncated JSON (still broken: the breaker is kept or the JSON is)
            var contentType = form == 1 ? Pick(new[] { "text/plain", "application/xml", "multipart/form-data", "application/json; charset=latin1" }) : "application/json";
            if (form == 1 && contentType == "application/json; charset=latin1") contentType = "text/plain";
            return (Json(method, path, text, contentType), $"{field}={body[field]?.ToJsonString() ?? "null"} ({contentType}, {text.Length} chars)");
        }

        private (HttpRequestMessage, string) Get(string path, string[] parameters, (string Param, string[] Bad)[] breakers)
        {
            var (param, bad) = Pick(breakers);
            var query = new List<string> { $"{param}={Pick(bad)}" };
            foreach (var p in parameters.Where(p => p != param && random.Next(3) == 0))
                query.Add($"{p}={Uri.EscapeDataString(Pick(Noise)?.ToJsonString() ?? "")}");
            var url = $"{path}?{string.Join("&", query)}";
            return (new HttpRequestMessage(HttpMethod.Get, url), url.Length > 200 ? url[..200] : url);
        }

        private (string, Func<(HttpRequestMessage, string)>)[] Routes()
        {
            JsonNode?[] badContent = [null, "", 5, new JsonArray(), new JsonObject(), new string('a', 10_001), "a\u0000b"];
            JsonNode?[] badPhone = ["12", "abc", 123, new JsonArray(), "+1 (202) 555-01234567", "\u0000+12025550123"];
            JsonNode?[] badType = ["imesage", 5, "fax", "i message"];
            JsonNode?[] badTime = ["yesterday", "2026-13-01T00:00:00Z", 20261204, "2026-12-04T10:00:00", "P1D"];
            JsonNode?[] badEmail = ["a@", "@b", "a b@c.d", 7, "a@b..c"];
            var message = new JsonObject { ["content"] = "Hi Ana", ["recipientPhone"] = "+12025550123", ["type"] = "auto", ["recipientName"] = "Ana" };
            var lead = new JsonObject { ["firstName"] = "Ana", ["phone"] = "+12025550124", ["email"] = "ana@example.com", ["tags"] = new JsonArray("vip") };
            var id = () => Pick(BadIds);
            string[] badLimit = ["abc", "-1", "0", "100000", "1e3", "%00", "9999999999999999999"];
            string[] badTimeQ = ["yesterday", "2026-13-01", "%00", "1e9"];
            string[] badCursor = ["%00", "!!!", "czotMQ", new string('A', 2000)];
            return
            [
                ("POST /api/messages", () => Body(HttpMethod.Post, "/api/messages", message,
                    [("content", badContent), ("recipientPhone", badPhone), ("type", badType), ("scheduledAt", badTime), ("timeZone", ["Mars/Base", 5, "UTC+99"]),
                     ("lineId", ["no-such-line", 5]), ("leadId", ["lead_nope", 5]), ("recipientEmail", badEmail), ("batchId", ["", new string('b', 200), "a\u0001"])])),
                ("POST /api/messages/bulk", () => Body(HttpMethod.Post, "/api/messages/bulk",
                    new JsonObject { ["leadIds"] = new JsonArray("lead_x"), ["content"] = "Hi {{firstName}}" },
                    [("leadIds", [null, "x", new JsonArray(), new JsonArray((JsonNode?)null), 5]), ("content", badContent), ("type", badType), ("scheduledAt", badTime)])),
                ("PATCH /api/messages/{id}", () => Body(HttpMethod.Patch, $"/api/messages/{id()}", new JsonObject { ["content"] = "new" },
                    [("content", [5, new JsonArray(), new string('a', 10_001)]), ("scheduledAt", badTime)])),
                ("POST /api/messages/{id}/cancel", () => (new HttpRequestMessage(HttpMethod.Post, $"/api/messages/{id()}/cancel"), "cancel")),
                ("POST /api/messages/{id}/retry", () => Body(HttpMethod.Post, $"/api/messages/{id()}/retry", new JsonObject { ["x"] = 1 }, [("x", [1, "a", null])])),
                ("POST /api/leads", () => Body(HttpMethod.Post, "/api/leads", lead,
                    [("phone", badPhone), ("email", badEmail), ("tags", [new JsonArray((JsonNode?)null), new JsonArray(5), "vip", new JsonArray(new string('t', 200))]),
                     ("fields", ["x", 5, new JsonArray()]), ("firstName", [5, new string('n', 300)])])),
                ("PATCH /api/leads/{id}", () => Body(HttpMethod.Patch, $"/api/leads/{id()}", lead, [("phone", badPhone), ("email", badEmail)])),
                ("POST /api/leads/import", () => (Json(HttpMethod.Post, "/api/leads/import", Pick(new[] { "abc", "--X\r\n", "\u0000" }),
                    Pick(new[] { "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=X", "application/json" })), "import")),
                ("POST /api/suppressions", () => Body(HttpMethod.Post, "/api/suppressions", new JsonObject { ["address"] = "+12025550125", ["reason"] = "asked" },
                    [("address", [null, "", "zz", 5, "a@", new JsonArray()])])),
                ("POST /api/webhooks", () => Body(HttpMethod.Post, "/api/webhooks", new JsonObject { ["url"] = "http://127.0.0.1:9/hook", ["events"] = new JsonArray("message.sent") },
                    [("url", [null, "", "not a url", "ftp://example.com/", 5, "http://169.254.169.254/latest/meta-data"]), ("events", [new JsonArray("message.nope"), "x", 5])])),
                ("PATCH /api/lines/{id}", () => Body(HttpMethod.Patch, $"/api/lines/{Pick(new[] { "default", "nope", "%00" })}", new JsonObject { ["active"] = true },
                    [("active", ["yes", 5, new JsonArray()])])),
                ("POST /api/availability", () => Body(HttpMethod.Post, "/api/availability", new JsonObject { ["addresses"] = new JsonArray("+12025550126") },
                    [("addresses", [null, "x", new JsonArray((JsonNode?)null), new JsonArray(5), new JsonArray("zz")])])),
                ("GET /api/messages", () => Get("/api/messages", ["status", "type", "lineId", "from", "to", "recipient", "q", "limit", "cursor"],
                    [("limit", badLimit), ("status", ["bogus", "sent,bogus", "%00"]), ("type", ["fax", "%00"]), ("from", badTimeQ), ("to", badTimeQ),
                     ("cursor", badCursor), ("q", ["%00", "a%01"]), ("recipient", ["%00"])])),
                ("GET /api/messages/export", () => Get("/api/messages/export", ["status", "format", "from", "q"],
                    [("format", ["xml", "%00", "CSVX"]), ("status", ["bogus"]), ("from", badTimeQ), ("q", ["%00"])])),
                ("GET /api/leads", () => Get("/api/leads", ["q", "tag", "limit", "cursor"], [("limit", badLimit), ("cursor", badCursor), ("q", ["%00"]), ("tag", ["%00"])])),
                ("GET /api/suppressions", () => Get("/api/suppressions", ["limit", "cursor"], [("limit", badLimit), ("cursor", ["%00"])])),
                ("GET /api/availability", () => Get("/api/availability", ["address"], [("address", ["", "zz", "%00", "a@"])])),
            ];
        }
    }

    [Test]
    public async Task AnExposedKestrelEndpoint_ShouldStopTheAgent_UnlessATokenWasSetOnPurpose()
    {
        using var dir = new TempDir();
        var viaArgs = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path,
            "--Kestrel:Endpoints:Http:Url=http://0.0.0.0:0"], timeout: TimeSpan.FromSeconds(60));
        Assert.That(viaArgs.ExitCode, Is.Not.Zero);
        Assert.That(viaArgs.Stdout + viaArgs.Stderr, Does.Contain("beyond loopback"));

        var viaEnv = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "run", "--dry-run", "--data-dir", dir.Path],
            new Dictionary<string, string?> { ["LINEAGENT__Kestrel__Endpoints__X__Url"] = "http://0.0.0.0:0" }, TimeSpan.FromSeconds(60));
        Assert.That(viaEnv.ExitCode, Is.Not.Zero);
        Assert.That(viaEnv.Stdout + viaEnv.Stderr, Does.Contain("beyond loopback"));
    }
}
