using System.Text;

namespace LineAgent.Cli;

/// <summary>
/// What the client commands print to a terminal. Replies, names and error details are written by strangers: an ESC or
/// BEL in them would reach the terminal as a command (clear the screen, retitle the window, an OSC 8 link whose text
/// hides where it goes), a lone CR would overwrite the start of its line, and a bidi override (U+202E) would show text
/// reversed (the isolates U+2066-2069, which phones put around names, cannot, and pass). Such characters are written as <c>\uXXXX</c> instead: visible, and still the same character inside the
/// JSON of <c>--json</c> (whose own escapes already cover C0). Tabs, line feeds and CR LF pass as they are.
/// </summary>
public sealed class TerminalText : TextWriter
{
    private readonly TextWriter _inner;

    public TerminalText(TextWriter inner) => _inner = inner;

    public override Encoding Encoding => _inner.Encoding;

    /// <summary>Console.Out and Console.Error through <see cref="TerminalText"/> until disposed.</summary>
    public static IDisposable ForConsole()
    {
        var (output, error) = (Console.Out, Console.Error);
        Console.SetOut(Synchronized(new TerminalText(output)));
        Console.SetError(Synchronized(new TerminalText(error)));
        return new Restore(output, error);
    }

    private sealed class Restore(TextWriter output, TextWriter error) : IDisposable
    {
        public void Dispose()
        {
            Console.Out.Flush();
            Console.Error.Flush();
            Console.SetOut(output);
            Console.SetError(error);
        }
    }

    internal static bool Unsafe(char c) =>
        c is < ' ' and not ('\t' or '\n' or '\r')
        || c is '\u007F' or (>= '\u0080' and <= '\u009F')
        || c is >= '\u202A' and <= '\u202E'; // embeddings and overrides; the isolates (U+2066-2069) that phones put around names pass

    /// <summary><paramref name="text"/> with every unsafe character (and every CR not before a LF) as <c>\uXXXX</c>.</summary>
    public static string Escape(string text)
    {
        var i = 0;
        while (i < text.Length && !Unsafe(text[i]) && (text[i] != '\r' || (i + 1 < text.Length && text[i + 1] == '\n')))
            i++;
        if (i == text.Length)
            return text;
        var b = new StringBuilder(text.Length + 16).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (Unsafe(c) || (c == '\r' && !(i + 1 < text.Length && text[i + 1] == '\n')))
                b.Append("\\u").Append(((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            else
                b.Append(c);
        }
        return b.ToString();
    }

    public override void Write(char value)
    {
        if (Unsafe(value) || value == '\r')
            _inner.Write(Escape(value.ToString()));
        else
            _inner.Write(value);
    }

    public override void Write(string? value)
    {
        if (value is not null)
            _inner.Write(Escape(value));
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void WriteLine(string? value)
    {
        Write(value);
        _inner.WriteLine();
    }

    public override void WriteLine() => _inner.WriteLine();

    public override void Flush() => _inner.Flush();

    public override Task FlushAsync() => _inner.FlushAsync();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _inner.Flush();
        base.Dispose(disposing);
    }
}
