using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;

namespace LineAgent.Api;

/// <summary>
/// Kestrel answers some bad requests itself, before the app runs (400 for a NUL in the path or bad header
/// bytes, 414 for a long request line, 431 for large headers), with an empty body. This connection filter
/// recognises those answers on their way out (a 4xx with `Content-Length: 0` and `Connection: close` at the
/// start of a write: the app never sends that, its 4xx always carry a problem body) and gives them the same
/// problem+json body, with a `code`, that every other 4xx of the agent has.
/// </summary>
public static class KestrelRejections
{
    public static void Use(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions listen) => listen.Use(next => async context =>
    {
        var original = context.Transport;
        var output = new RewritingStream(original.Output.AsStream(leaveOpen: true));
        context.Transport = new Duplex(original.Input, PipeWriter.Create(output, new StreamPipeWriterOptions(leaveOpen: true)));
        try
        {
            await next(context);
        }
        finally
        {
            await context.Transport.Output.CompleteAsync();
            context.Transport = original;
        }
    });

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;
        public PipeWriter Output => output;
    }

    /// <summary>The problem body for a status Kestrel chose.</summary>
    public static byte[] Body(int status, string reason) => Encoding.UTF8.GetBytes(
        $$"""{"type":"https://tools.ietf.org/html/rfc9110#section-15.5","title":"{{reason}}","status":{{status}},"detail":"The request was refused before it reached the agent: {{reason}}.","code":"{{StatusCodes4xx.CodeFor(status)}}"}""");

    private sealed class RewritingStream(Stream inner) : Stream
    {
        private static readonly byte[] Prefix = "HTTP/1.1 4"u8.ToArray();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            if (buffer.Length > 16 && buffer.Span.StartsWith(Prefix) && TryRewrite(buffer.Span, out var rewritten))
                buffer = rewritten;
            await inner.WriteAsync(buffer, ct);
        }

        public override void Write(byte[] buffer, int offset, int count) =>
            WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

        private static bool TryRewrite(ReadOnlySpan<byte> data, out byte[] rewritten)
        {
            rewritten = [];
            var end = data.IndexOf("\r\n\r\n"u8);
            if (end < 0 || end + 4 != data.Length)
                return false; // not a bare header block: the app's own response (it always has a body)
            var head = Encoding.ASCII.GetString(data[..end]);
            var lines = head.Split("\r\n");
            if (!lines.Any(l => l.Equals("Content-Length: 0", StringComparison.OrdinalIgnoreCase))
                || !lines.Any(l => l.Equals("Connection: close", StringComparison.OrdinalIgnoreCase)))
                return false;
            var statusLine = lines[0].Split(' ', 3);
            if (statusLine.Length < 2 || !int.TryParse(statusLine[1], out var status))
                return false;
            var body = Body(status, statusLine.Length > 2 ? statusLine[2] : "Bad Request");
            var headers = lines.Where(l => !l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)
                                          && !l.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase))
                .Append("Content-Type: application/problem+json")
                .Append($"Content-Length: {body.Length}");
            rewritten = [.. Encoding.ASCII.GetBytes(string.Join("\r\n", headers) + "\r\n\r\n"), .. body];
            return true;
        }

        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
