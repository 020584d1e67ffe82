namespace LineAgent.Channels.Messages;

/// <summary>
/// Messages sends whose script has started, in memory: until their outcome is on disk (their chat.db baseline is stored
/// before the script, but a pass reads only sends whose outcome is written), and 10
/// minutes more (a pass that began before must still see it, and an outcome written without a baseline keeps it here).
/// A chat.db row above such a send's baseline may be that send's own: the delivery watcher does not give it to another
/// send of the same person (or, for a ghost row that names nobody, of anyone) until the outcome is written.
/// </summary>
/// <remarks>
/// Before, the watcher knew of a send only from its hand-off on the database, so it held rows dated from the hand-off:
/// a row of another line's send written after this hand-off (the Messages gate made it wait) was held until this
/// script's outcome, which could be minutes with a hung script, and the other send failed `unconfirmed` meanwhile.
/// The baseline (chat.db's MAX(ROWID) just before the script) says exactly which rows can be this send's.
/// </remarks>
public sealed class MessagesSendsInFlight
{
    /// <param name="Recipient">As the message row has it (<c>MessageRow.Recipient</c>).</param>
    /// <param name="Baseline">chat.db's MAX(ROWID) before the script; null when it could not be read (busy): then rows dated from <paramref name="StartedAt"/>.</param>
    /// <param name="RecordedAt">The registry's count of recorded outcomes when this one was recorded; null while it is not.</param>
    /// <param name="Order">The order in which the scripts started (one runs at a time): which of two sends is the later.</param>
    public sealed record Send(string MessageId, string Recipient, long? Baseline, DateTimeOffset StartedAt, long? RecordedAt, long ChangedTicks, long Order = 0);

    private readonly Dictionary<string, Send> _sends = [];
    private long _recorded;
    private long _started;

    /// <summary>
    /// Kept this long after its outcome is written: a watcher pass that began before must still see it, and a send whose
    /// outcome was written without its baseline (the attempt timed out) is still held by the baseline kept here, or by the
    /// time its script started when chat.db was busy.
    /// </summary>
    private static readonly TimeSpan KeepRecorded = TimeSpan.FromMinutes(10);

    private static readonly TimeSpan KeepStarted = TimeSpan.FromHours(1);

    /// <summary>Just before the script runs, after the baseline is read.</summary>
    public void Started(string messageId, string recipient, long? baseline, DateTimeOffset at)
    {
        lock (_sends)
            _sends[messageId] = new Send(messageId, recipient, baseline, at, null, Environment.TickCount64, ++_started);
    }

    /// <summary>The send's outcome is on disk (or will never be: the agent stops): its baseline is the database's to tell.</summary>
    public void Recorded(string messageId)
    {
        lock (_sends)
            if (_sends.TryGetValue(messageId, out var send) && send.RecordedAt is null)
                _sends[messageId] = send with { RecordedAt = ++_recorded, ChangedTicks = Environment.TickCount64 };
    }

    /// <summary>How many outcomes have been recorded: read before a watcher pass loads the sends it matches.</summary>
    public long Mark
    {
        get { lock (_sends) return _recorded; }
    }

    /// <summary>The sends known now (those past their time dropped).</summary>
    public IReadOnlyList<Send> Snapshot()
    {
        var now = Environment.TickCount64;
        lock (_sends)
        {
            foreach (var old in _sends.Values.Where(s => now - s.ChangedTicks > (s.RecordedAt is null ? KeepStarted : KeepRecorded).TotalMilliseconds).ToList())
                _sends.Remove(old.MessageId);
            return _sends.Values.ToList();
        }
    }

    /// <summary>Whether a pass that read its sends after <paramref name="mark"/> may not have seen this send's outcome.</summary>
    public static bool UnseenBy(Send send, long mark) => send.RecordedAt is null || send.RecordedAt > mark;
}
