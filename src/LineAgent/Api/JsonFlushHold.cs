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

    public static Task Use(HttpContext context, RequestDelegate next)
    {
        var features = context.Features;
        if (features.Get<IHttpResponseBodyFeature>() is not { } body)
            return next(context);
        features.Set<IHttpResponseBodyFeature>(new JsonFlushHold(body, context.Response));
        return next(context);
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
    // answer never ended (review of the first version).
    public override bool CanGetUnflushedBytes => true;
    public override long UnflushedBytes => _unflushed;
    public override void CancelPendingFlush() => _inner.CancelPendingFlush();
    public override void Complete(Exception? exception = null) => _inner.Complete(exception);
    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        _unflushed = 0;
        if (_held < HoldBytes && IsJson(response.ContentType))
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
        _held = 0;
        return _inner.FlushAsync(cancellationToken);
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null && (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith("application/problem+json", StringComparison.OrdinalIgnoreCase));
}
