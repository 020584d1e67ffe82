using System.Security.Cryptography;

namespace LineAgent.WebConsole;

/// <summary>One file of the console, embedded in the agent's assembly (Console/wwwroot/**).</summary>
public sealed record ConsoleAsset(string Name, byte[] Bytes, string ContentType, string ETag);

/// <summary>The console's pages, scripts and styles, read once from the assembly: nothing comes from disk or the network.</summary>
public sealed class ConsoleAssets
{
    private const string Prefix = "console/";
    private readonly Dictionary<string, ConsoleAsset> _files = new(StringComparer.Ordinal);

    public ConsoleAssets()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            var bytes = memory.ToArray();
            var name = resource[Prefix.Length..].Replace('\\', '/');
            _files[name] = new ConsoleAsset(name, bytes, ContentTypeOf(name), $"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..20]}\"");
        }
    }

    public IEnumerable<string> Names => _files.Keys;

    public ConsoleAsset? Find(string name) => _files.GetValueOrDefault(name);

    public string Text(string name) =>
        Find(name) is { } a ? System.Text.Encoding.UTF8.GetString(a.Bytes) : throw new InvalidOperationException($"console file {name} is not embedded");

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        _ => "application/octet-stream",
    };
}
