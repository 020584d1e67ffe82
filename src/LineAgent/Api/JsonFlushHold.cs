using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace LineAgent.Api;

/// <summary>
/// One send per JSON answer. System.Text.Json flushes the response when it has written a value, so Kestrel sent the
/// headers and the body, and then the end of the chunked body in a second send: two syscalls and two TCP segments per
/// answer, and a second wake-up of the client (strace under the bench's POST load: 2.0 sends per request). While the
/// answer is JSON (or a problem) and less than <see cref="HoldBytes"/> is waiting, a flush is held: Kestrel writes
/// everything when the request ends, in one send. Other answers (the console's event stream, CSV and NDJSON exports) and
/// larger JSON flush as they ask.
/// </summary>
internal sealed class JsonFlushHold(IHttpResponseBodyFeature inner, HttpResponse response) : PipeWriter, IHttpResponseBodyFeature
{
    /// <summary>Kestrel's own output buffer before it applies back-pressure (its MaxResponseBufferSize).</summary>
    public const int HoldBytes = 64 * 1024;

    private readonly PipeWriter _inner = inner.Writer;
    private long _held; // written since the last flush that reached Kestrel
    private long _unflushed; // written since the caller's last flush, held or not
    private bool _passNext; // CancelPendingFlush: the next flush goes to Kestrel, which answers it cancelled

    /// <summary>
    /// Inside the exception handler: an endpoint that fails after writing part of its answer has that part sent, so the
    /// response has started and the connection is cut, as before. Held back, the handler would have cleared the headers
    /// and written a problem after the part it cannot take back: a well-formed 500 with a broken body (review).
    /// </summary>
    public static Task Use(HttpContext context, RequestDelegate next)
    {
        var features = context.Features;
        if (features.Get<IHttpResponseBodyFeature>() is not { } body)
            return next(context);
        var hold = new JsonFlushHold(body, context.Response);
        features.Set<IHttpResponseBodyFeature>(hold);
        var run = next(context);
        return run.IsCompletedSuccessfully ? run : hold.SendPartOnFailureAsync(run);
    }

    private async Task SendPartOnFailureAsync(Task run)
    {
        try
        {
            await run;
        }
        catch when (_held > 0 && !response.HasStarted)
        {
            try { await _inner.FlushAsync(); }
            catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException) { }
            throw;
        }
    }

    // The response's Stream stays Kestrel's (its rules for synchronous writes included): JSON results write through Writer.
    Stream IHttpResponseBodyFeature.Stream => inner.Stream;
    PipeWriter IHttpResponseBodyFeature.Writer => this;
    void IHttpResponseBodyFeature.DisableBuffering() => inner.DisableBuffering();
    Task IHttpResponseBodyFeature.StartAsync(CancellationToken ct) => inner.StartAsync(ct);
    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken ct) =>
        inner.SendFileAsync(path, offset, count, ct);
    Task IHttpResponseBodyFeature.CompleteAsync() => inner.CompleteAsync();

    public override void Advance(int bytes)
    {
        _inner.Advance(bytes);
        _held += bytes;
        _unflushed += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0) => _inner.GetMemory(sizeHint);
    public override Span<byte> GetSpan(int sizeHint = 0) => _inner.GetSpan(sizeHint);
    // What the caller wrote since its own last flush: a held flush counts as done for it. System.Text.Json decides to flush
    // by this figure, and one that a held flush left unchanged made it flush again at every step without writing: a 39 KB
    // answer never ended (the first version; HostileInputTests timed out).
    public override bool CanGetUnflushedBytes => true;
    public override long UnflushedBytes => _unflushed;
    public override void CancelPendingFlush()
    {
        _passNext = true;
        _inner.CancelPendingFlush();
    }

    public override void Complete(Exception? exception = null) => _inner.Complete(exception);
    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        _unflushed = 0;
        // A cancelled token, a cancelled flush and a client gone are Kestrel's to answer.
        if (_held < HoldBytes && !_passNext && !cancellationToken.IsCancellationRequested
            && !response.HttpContext.RequestAborted.IsCancellationRequested && IsJson(response.ContentType))
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
        _held = 0;
        _passNext = false;
        return _inner.FlushAsync(cancellationToken);
    }

    /// <summary>The two whole answers the API writes; not application/json-seq, jsonl or any type meant to stream.</summary>
    private static bool IsJson(string? contentType)
    {
        if (contentType is null)
            return false;
        var type = contentType.AsSpan();
        if (type.IndexOf(';') is var semicolon and >= 0)
            type = type[..semicolon];
        type = type.Trim();
        return type.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || type.Equals("application/problem+json", StringComparison.OrdinalIgnoreCase);
    }
}
