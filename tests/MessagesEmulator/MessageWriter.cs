namespace MessagesEmulation;

/// <summary>One message as Messages writes it: the row plus its handle, chat and joins, in one transaction.</summary>
internal sealed class NewMessage
{
    public required string Service { get; init; }
    public required string Address { get; init; }
    /// <summary>The typedstream blob (null for a ghost row).</summary>
    public byte[]? AttributedBody { get; init; }
    public bool FromMe { get; init; }
    /// <summary>macOS 26 ghost row: text '', no attributedBody, service SMS, no chat_message_join.</summary>
    public bool Ghost { get; init; }
    /// <summary>Apple ns date; null = now.</summary>
    public long? Date { get; init; }
    public string? Guid { get; init; }
    /// <summary>When set, a URL balloon row follows the message in the same transaction, with this attributedBody.</summary>
    public byte[]? UrlPreviewBody { get; init; }
    /// <summary>A sent row first inserted with `is_from_me = 0` and no handle, which a later UPDATE sets (`fromMeLaterMs`).</summary>
    public bool NotYetFromMe { get; init; }

    /// <summary>The message as a file, for a row the detached timeline writes later (`rowAfterReturnMs`).</summary>
    public void Save(string path) => File.WriteAllLines(path,
    [
        Service, Address, Ghost ? "1" : "0", NotYetFromMe ? "1" : "0", FromMe ? "1" : "0",
        AttributedBody is null ? "-" : Convert.ToBase64String(AttributedBody),
        UrlPreviewBody is null ? "-" : Convert.ToBase64String(UrlPreviewBody),
    ]);

    public static NewMessage Load(string path)
    {
        var l = File.ReadAllLines(path);
        return new NewMessage
        {
            Service = l[0], Address = l[1], Ghost = l[2] == "1", NotYetFromMe = l[3] == "1", FromMe = l[4] == "1",
            AttributedBody = l[5] == "-" ? null : Convert.FromBase64String(l[5]),
            UrlPreviewBody = l[6] == "-" ? null : Convert.FromBase64String(l[6]),
        };
    }
}

internal static class MessageWriter
{
    public const string UrlBalloonProvider = "com.apple.messages.URLBalloonProvider";

    /// <summary>Writes the message (BEGIN IMMEDIATE … COMMIT); returns its ROWID, that of the URL preview row, if any, and its handle's.</summary>
    public static (long RowId, long? PreviewRowId, long HandleId) Write(string home, NewMessage m)
    {
        var state = State.Read(home);
        using var db = ChatDb.OpenIn(home);
        db.Exec("BEGIN IMMEDIATE");
        try
        {
            var date = m.Date ?? ChatDb.NowNs();
            var service = m.Ghost ? "SMS" : m.Service;
            var (account, myAddress) = ChatDb.AccountFor(service, State.Me(state), State.SmsNumber(state));
            var handleId = db.EnsureHandle(m.Address, service);
            var guid = m.Guid ?? ChatDb.NewGuid();
            var values = new Row
            {
                { "guid", guid }, { "text", m.Ghost ? "" : null },
                { "attributedBody", m.Ghost ? null : m.AttributedBody },
                { "handle_id", m.NotYetFromMe ? 0 : handleId }, { "service", service }, { "account", account },
                { "account_guid", ChatDb.AccountGuid(account) }, { "version", 10 }, { "type", 0 },
                { "error", 0 }, { "is_from_me", m.FromMe && !m.NotYetFromMe ? 1 : 0 },
                { "is_sent", 0 }, { "is_finished", m.FromMe ? 0 : 1 },
                { "is_delivered", m.FromMe ? 0 : 1 }, { "is_read", 0 },
                { "date", date }, { "date_read", 0 }, { "date_delivered", 0 },
                { "item_type", 0 }, { "associated_message_type", 0 }, { "cache_roomnames", null },
                { "destination_caller_id", myAddress }, { "part_count", 1 },
            };
            var rowId = db.Insert("message", values);
            long? previewId = null;
            if (!m.Ghost)
            {
                var chatId = db.EnsureChat(m.Address, service, handleId, account, myAddress);
                db.JoinMessage(chatId, rowId, date);
                if (m.UrlPreviewBody is not null)
                {
                    // Its own transaction after the text row's (openclaw/imsg MessageWatcher.swift: "a separate filesystem
                    // event"), naming the text row in reply_to_guid where the column exists (MessageStore+URLPreviews.swift).
                    db.Exec("COMMIT");
                    db.Exec("BEGIN IMMEDIATE");
                    values["reply_to_guid"] = guid;
                    values["guid"] = ChatDb.NewGuid();
                    values["text"] = null;
                    values["attributedBody"] = m.UrlPreviewBody;
                    values["balloon_bundle_id"] = UrlBalloonProvider;
                    previewId = db.Insert("message", values);
                    db.JoinMessage(chatId, previewId.Value, date);
                }
            }
            db.Exec("COMMIT");
            return (rowId, previewId, handleId);
        }
        catch
        {
            try { db.Exec("ROLLBACK"); }
            catch (Microsoft.Data.Sqlite.SqliteException) { }
            throw;
        }
    }
}
