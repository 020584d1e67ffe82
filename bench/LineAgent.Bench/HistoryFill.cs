using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace LineAgent.Bench;

/// <summary>What the history step queries for: values that exist in the generated rows.</summary>
public sealed record HistorySample(DateOnly Day, string Recipient, string Word, string LineId, string BatchId, int Rows, TimeSpan FillTime,
    long DbBytes, IReadOnlyDictionary<string, int> ByStatus, IReadOnlyList<string> Phones);

/// <summary>
/// Fills the agent's own database (schema created by the agent's migrations, agent stopped) with a year of
/// history, the way tests/LineAgent.Tests/Storage/MillionRowsBenchmark.cs did: one transaction, one
/// prepared INSERT. Spread: 4 lines (40/30/20/10 %), imessage/sms/email 60/30/10 %, 96 % outbound
/// (sent ~94 %, failed 4 %, cancelled 1.5 %; the newest 1 % scheduled in the next 30 days), 4 % inbound
/// replies; 1/3 of the rows in bulk batches of 2,000; recipients from rows/20 contacts, skewed (a few
/// get many messages); 30 % sent at a schedule; iMessages delivered/read. No ANALYZE: the agent never
/// runs one, so the query planner works without statistics as it would in the field. message_events
/// are not generated (history filters do not read them).
/// </summary>
public static class HistoryFill
{
    public static readonly string[] Lines = ["mac-1", "mac-2", "mac-3", "mac-4"];

    private static readonly string[] First =
    [
        "Ana", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kate", "Liam", "Maya", "Noah", "Olga", "Pablo",
        "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Xena", "Yusuf", "Zoe", "Aiko", "Bruno", "Chloe", "Diego", "Emma", "Felix",
        "Gina", "Hana", "Ivan", "Julia", "Karim", "Lena", "Marco", "Nina", "Omar", "Priya", "Raj", "Sofia", "Tom", "Uma", "Victor", "Wen",
    ];

    private static readonly string[] Last =
    [
        "Ruiz", "Smith", "Okafor", "Nguyen", "Kowalski", "Haddad", "Martin", "Silva", "Chen", "Patel", "Garcia", "Müller", "Rossi", "Kim",
        "Johnson", "Dubois", "Tanaka", "Ivanova", "Brown", "Lopez", "Novak", "Cohen", "Hansen", "Murphy", "Ali", "Schmidt", "Costa",
        "Wilson", "Moreau", "Sato", "Andersen", "Fischer", "Kaur", "Walsh", "Yilmaz", "Berg", "Lee", "Clark", "Reyes", "Fernandes",
    ];

    private static readonly string[] Areas = ["202", "212", "305", "312", "415", "512", "617", "718", "773", "646"];
    private static readonly string[] Domains = ["example.com", "mail.example.org", "corp.example.net", "example.io"];

    private static readonly string[] Sentences =
    [
        "your invoice for March is attached, let me know if anything looks off.",
        "are we still on for the demo on Thursday at 10?",
        "thanks for the call today, I will send the contract tonight.",
        "the renewal quote is ready whenever you want to go through it.",
        "quick reminder: your appointment is tomorrow at 3 pm.",
        "just checking in, did you get a chance to look at the proposal?",
        "the shipment left the warehouse this morning, tracking to follow.",
        "happy to set up a meeting next week, which day works best?",
        "we moved the onboarding session to Monday, same time.",
        "your account has been upgraded, welcome aboard!",
        "could you confirm the delivery address for the order?",
        "the invoices for Q3 are overdue, can we sort it out this week?",
        "great meeting you at the conference, let us keep in touch.",
        "the offer is valid until Friday, let me know your thoughts.",
        "we have a few spots left for the workshop on the 12th.",
        "your payment went through, thank you!",
    ];

    private static readonly string[] Campaigns =
    [
        "Hi {0}, our spring offer is live: 20% off for existing customers until the end of the month.",
        "Hi {0}, a reminder that the webinar on pricing starts tomorrow at noon. Reply STOP to opt out.",
        "{0}, thanks for being with us this year. Your renewal is coming up, anything we can help with?",
        "Hi {0}, we are opening a new office downtown. Come by for coffee on Friday!",
        "Hi {0}, your invoice is ready in the portal. Questions? Just reply here.",
    ];

    private static readonly string[] Replies = ["Thanks!", "Sounds good", "Can we do Friday instead?", "Who is this?", "STOP", "ok", "Yes please, send the invoice", "Call me later", "See you there \U0001F389"];

    private static readonly (string Code, string Message)[] Failures =
    [
        ("imessage_unavailable", "The recipient does not have iMessage (error 22)."),
        ("unconfirmed", "Messages accepted the send but chat.db never showed it."),
        ("invalid_recipient", "The number is not a valid mobile number."),
        ("suppressed", "The recipient opted out (suppression list); nothing was sent."),
        ("delivery_failed", "The channel reported a failure."),
    ];

    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    public static HistorySample Fill(string dbPath, int rows, DateTimeOffset now, CancellationToken ct, int seed = 10)
    {
        var rng = new Random(seed);
        var contacts = Math.Max(1_000, rows / 20);
        var nowMs = now.ToUnixTimeMilliseconds();
        var baseMs = nowMs - 365L * 86_400_000;
        var stepMs = 365.0 * 86_400_000 / rows;
        var byStatus = new Dictionary<string, int>();
        var clock = Stopwatch.StartNew();

        string Phone(int c) => "+1" + Areas[c % Areas.Length] + (2_000_000 + (int)((long)c * 7919 % 8_000_000)).ToString("D7", CultureInfo.InvariantCulture);
        string FirstOf(int c) => First[c % First.Length];
        string LastOf(int c) => Last[(c / First.Length) % Last.Length];
        string Email(int c) => $"{FirstOf(c)}.{LastOf(c)}{c}@{Domains[c % Domains.Length]}".ToLowerInvariant();

        var connection = new SqliteConnectionStringBuilder { DataSource = dbPath, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString();
        using (var c = new SqliteConnection(connection))
        {
            c.Open();
            using (var tx = c.BeginTransaction())
            {
                using var cmd = c.CreateCommand();
                cmd.Transaction = tx;
                string[] columns =
                [
                    "id", "direction", "content", "subject", "type", "requested_type", "status", "delivery", "line_id", "lead_id", "batch_id",
                    "recipient_phone", "recipient_email", "recipient_name", "scheduled_at", "due_at", "sent_at", "delivered_at", "read_at",
                    "created_at", "updated_at", "error_code", "error_message", "dry_run", "handed_at", "channel", "channel_ref", "new_conversation",
                ];
                cmd.CommandText = $"INSERT INTO messages ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select(n => "@" + n))})";
                var p = columns.ToDictionary(n => n, n => cmd.Parameters.Add(new SqliteParameter("@" + n, DBNull.Value)));
                cmd.Prepare();
                Span<char> id = stackalloc char[26];

                for (var i = 0; i < rows; i++)
                {
                    if (i % 10_000 == 0) ct.ThrowIfCancellationRequested();
                    foreach (var parameter in p.Values) parameter.Value = DBNull.Value;
                    var created = baseMs + (long)((i + rng.NextDouble()) * stepMs);
                    var block = i / 2000;
                    var inBatch = block % 3 == 0;
                    var u = rng.NextDouble();
                    var contact = inBatch ? rng.Next(contacts) : (int)(contacts * u * u);
                    var first = FirstOf(contact);
                    var inbound = !inBatch && rng.NextDouble() < 0.04;
                    var future = i >= rows - rows / 100;

                    var t = rng.NextDouble();
                    var type = inbound ? (t < 0.7 ? "imessage" : "sms") : t < 0.6 ? "imessage" : t < 0.9 ? "sms" : "email";
                    string status;
                    long? scheduled = null, sent = null, delivered = null, read = null, handed = null;
                    var delivery = "unknown";
                    string? errorCode = null, errorMessage = null;
                    if (inbound)
                    {
                        status = "received";
                        sent = created;
                    }
                    else if (future)
                    {
                        status = "scheduled";
                        scheduled = nowMs + 3_600_000 + (long)(rng.NextDouble() * 29 * 86_400_000);
                    }
                    else
                    {
                        if (rng.NextDouble() < 0.3 && created + 2 * 86_400_000L < nowMs)
                            scheduled = created + 300_000 + (long)(rng.NextDouble() * 2 * 86_400_000);
                        var due = scheduled ?? created;
                        var s = rng.NextDouble();
                        if (s < 0.04)
                        {
                            status = "failed";
                            var f = Failures[rng.Next(Failures.Length)];
                            if (type == "email" && f.Code == "imessage_unavailable") f = ("smtp_rejected", "550 5.1.1 mailbox unavailable");
                            (errorCode, errorMessage) = f;
                            handed = due + 500;
                        }
                        else if (s < 0.055)
                        {
                            status = "cancelled";
                        }
                        else
                        {
                            status = "sent";
                            sent = due + 200 + (long)(rng.NextDouble() * 90_000);
                            handed = sent - 100;
                            if (type == "imessage")
                            {
                                var d = rng.NextDouble();
                                if (d < 0.95)
                                {
                                    delivery = d < 0.6 ? "read" : "delivered";
                                    delivered = sent + 1_500;
                                    if (d < 0.6) read = delivered + (long)(rng.NextDouble() * 3 * 3_600_000);
                                }
                            }
                        }
                    }

                    var content = inbound ? Replies[rng.Next(Replies.Length)]
                        : inBatch ? string.Format(CultureInfo.InvariantCulture, Campaigns[block / 3 % Campaigns.Length], first)
                        : $"Hi {first}, {Sentences[rng.Next(Sentences.Length)]}";

                    var ms = (ulong)created;
                    for (var k = 9; k >= 0; k--) { id[k] = Alphabet[(int)(ms & 31)]; ms >>= 5; }
                    for (var k = 10; k < 26; k++) id[k] = Alphabet[rng.Next(32)];

                    p["id"].Value = "msg_" + new string(id);
                    p["direction"].Value = inbound ? "inbound" : "outbound";
                    p["content"].Value = content;
                    if (type == "email") p["subject"].Value = "A note from Example";
                    p["type"].Value = type;
                    p["requested_type"].Value = inbound || rng.NextDouble() >= 0.7 ? type : "auto";
                    p["status"].Value = status;
                    p["delivery"].Value = delivery;
                    p["line_id"].Value = Lines[rng.NextDouble() switch { < 0.4 => 0, < 0.7 => 1, < 0.9 => 2, _ => 3 }];
                    if (inBatch || rng.NextDouble() < 0.5) p["lead_id"].Value = $"lead_{contact:D8}";
                    if (inBatch) p["batch_id"].Value = $"batch_{block:D5}";
                    if (type == "email") p["recipient_email"].Value = Email(contact);
                    else p["recipient_phone"].Value = Phone(contact);
                    if (contact % 10 != 0) p["recipient_name"].Value = $"{first} {LastOf(contact)}";
                    if (scheduled is { } sc) p["scheduled_at"].Value = sc;
                    p["due_at"].Value = scheduled ?? created;
                    if (sent is { } se) p["sent_at"].Value = se;
                    if (delivered is { } de) p["delivered_at"].Value = de;
                    if (read is { } re) p["read_at"].Value = re;
                    p["created_at"].Value = created;
                    p["updated_at"].Value = new[] { created, sent ?? 0, delivered ?? 0, read ?? 0, handed ?? 0 }.Max();
                    if (errorCode is not null) { p["error_code"].Value = errorCode; p["error_message"].Value = errorMessage; }
                    p["dry_run"].Value = 0;
                    if (handed is { } h) p["handed_at"].Value = h;
                    if (status is "sent" or "failed" or "received")
                    {
                        p["channel"].Value = type == "email" ? "smtp" : "messages";
                        if (status != "failed")
                            p["channel_ref"].Value = type == "email" ? $"<{p["id"].Value}@example.com>" : Guid.NewGuid().ToString("D").ToUpperInvariant();
                    }
                    p["new_conversation"].Value = !inbound && rng.NextDouble() < 0.05 ? 1 : 0;
                    cmd.ExecuteNonQuery();
                    byStatus[status] = byStatus.GetValueOrDefault(status) + 1;
                }
                // The agent adds its own inserts to the full-text indexes in batches (no insert trigger); rows written
                // straight into the table are added the same way in one pass.
                using (var index = c.CreateCommand())
                {
                    index.Transaction = tx;
                    index.CommandText = """
                        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
                        INSERT INTO messages_recipients_fts(messages_recipients_fts) VALUES ('rebuild');
                        """;
                    index.ExecuteNonQuery();
                }
                tx.Commit();
            }
            using var checkpoint = c.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            checkpoint.ExecuteNonQuery();
        }
        var fill = clock.Elapsed;

        var recipient = Phone(contacts / 4)[5..]; // the 7 local digits of one contact who got ~rows/contacts messages
        var day = DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeMilliseconds(baseMs + 180L * 86_400_000).UtcDateTime);
        var batchBlock = Math.Min(150, (rows - 1) / 2000 / 3 * 3);
        // 40 contacts spread over the skew (from the busiest to the quietest), for lookups by one full address.
        var phones = Enumerable.Range(0, 40).Select(k => Phone(k * (contacts / 40))).ToList();
        return new HistorySample(day, recipient, "invoice", "mac-3", $"batch_{batchBlock:D5}", rows, fill,
            new FileInfo(dbPath).Length, byStatus, phones);
    }
}
