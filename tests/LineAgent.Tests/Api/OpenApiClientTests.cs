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

    /// <summary>Ordinary code that follows the contract: a send with a typed type and an Idempotency-Key, typed history filters, a webhook with only its url.</summary>
    private const string ContractCode = """
        using System;
        using System.Linq;
        using System.Net.Http;
        using System.Threading.Tasks;
        using Generated;

        public static class Contract
        {
            public static async Task<string> RunAsync(HttpClient http)
            {
                var client = new LineAgentClient(http);
                var request = new SendMessageRequest { Content = "Hi Ana", RecipientPhone = "+12025550123", Type = SendMessageRequestType.Imessage };
                MessageDto sent = await client.SendMessageAsync("contract-key-1", request, default);
                MessageDto replayed = await client.SendMessageAsync("contract-key-1", request, default);
                MessagePage page = await client.ListMessagesAsync(new[] { MessageStatusFilter.Sent, MessageStatusFilter.Scheduled }, new[] { MessageTypeFilter.Imessage },
                    null, null, null, null, null, null, null, null, 10, null, default);
                WebhookDto hook = await client.CreateWebhookAsync(new WebhookRequest { Url = "http://127.0.0.1:9/hook" }, default);
                return string.Join("|", sent.Id == replayed.Id, sent.Status, sent.Type, page.Items.Count, page.Items.All(m => m.Type == MessageDtoType.Imessage), hook.Url);
            }
        }
        """;

    [Test]
    public async Task ContractCode_ShouldCompileAgainstTheGeneratedClient_AndWorkAgainstTheAgent()
    {
        var (assembly, errors) = Compile(await ClientCodeAsync(), ContractCode);
        Assert.That(errors, Is.Empty, string.Join("\n", errors.Select(e => e.ToString())));

        using var agent = new AgentFactory();
        using var http = agent.Api();
        var run = (Task<string>)assembly!.GetType("Contract")!.GetMethod("RunAsync")!.Invoke(null, [http])!;
        Assert.That(await run, Is.EqualTo("True|Sent|Imessage|1|True|http://127.0.0.1:9/hook"),
            "one message (the key replayed it), found by the typed filters; a webhook with only a url");
    }

    [TestCase("Type = \"imesage\"", "CS0029")]
    [TestCase("Type = SendMessageRequestType.Imesage", "CS0117")]
    public async Task AMisspelledType_ShouldNotCompile(string assignment, string expectedError)
    {
        var misuse = $$"""
            using Generated;
            public static class Misuse
            {
                public static SendMessageRequest Make() => new SendMessageRequest { Content = "Hi", RecipientPhone = "+12025550123", {{assignment}} };
            }
            """;
        var (_, errors) = Compile(await ClientCodeAsync(), misuse);
        Assert.That(errors.Select(e => e.Id), Does.Contain(expectedError), string.Join("\n", errors.Select(e => e.ToString())));
    }
}
