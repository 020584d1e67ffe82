using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace LineAgent.Tests.Support;

/// <summary>One operation of the served OpenAPI document.</summary>
public sealed record OpenApiOperation(string Method, string Path, JsonObject Node)
{
    public string Id => Node["operationId"]?.GetValue<string>() ?? $"{Method} {Path}";
    public JsonObject Responses => Node["responses"]!.AsObject();
    public IEnumerable<JsonObject> Parameters => (Node["parameters"]?.AsArray() ?? []).Select(p => p!.AsObject());
    public JsonObject? Parameter(string name) => Parameters.FirstOrDefault(p => p["name"]!.GetValue<string>() == name);
    public JsonObject? RequestSchema(string contentType = "application/json") => Node["requestBody"]?["content"]?[contentType]?["schema"]?.AsObject();
    public override string ToString() => $"{Method} {Path} ({Id})";
}

/// <summary>
/// The document the agent serves at /openapi/v1.json, read as JSON, and a JSON Schema 2020-12 validator over its
/// component schemas (OpenAPI 3.1 schemas are JSON Schema; `#/components/schemas/X` is rewritten to `#/$defs/X`).
/// </summary>
public sealed partial class OpenApiSpec
{
    private static readonly string[] Methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    private readonly string _defs;

    public OpenApiSpec(string json)
    {
        Json = json;
        Root = JsonNode.Parse(json)!.AsObject();
        _defs = Rewrite((Root["components"]?["schemas"] ?? new JsonObject()).ToJsonString());
    }

    public string Json { get; }
    public JsonObject Root { get; }

    public static async Task<OpenApiSpec> FetchAsync(HttpClient client) =>
        new(await client.GetStringAsync("/openapi/v1.json"));

    public IReadOnlyList<OpenApiOperation> Operations =>
        Root["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject()
                .Where(o => Methods.Contains(o.Key))
                .Select(o => new OpenApiOperation(o.Key.ToUpperInvariant(), p.Key, o.Value!.AsObject())))
            .ToList();

    public OpenApiOperation Operation(string id) =>
        Operations.SingleOrDefault(o => o.Id == id) ?? throw new AssertionException($"no operation {id} in the document");

    public JsonObject Schema(string name) =>
        Root["components"]?["schemas"]?[name]?.AsObject() ?? throw new AssertionException($"no schema {name} in the document");

    /// <summary>Follows one `$ref` to a component.</summary>
    public JsonObject Resolve(JsonObject schema) =>
        schema["$ref"]?.GetValue<string>() is { } reference ? Schema(reference.Split('/')[^1]) : schema;

    /// <summary>Null when <paramref name="instance"/> is valid against <paramref name="schema"/>, else the errors.</summary>
    public string? Validate(JsonNode schema, JsonNode? instance)
    {
        var text = $$"""{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{{_defs}},"allOf":[{{Rewrite(schema.ToJsonString())}}]}""";
        var built = JsonSchema.FromText(text, baseUri: new Uri($"https://lineagent.test/{Guid.NewGuid():N}"));
        using var document = JsonDocument.Parse(instance?.ToJsonString() ?? "null");
        var result = built.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true });
        if (result.IsValid)
            return null;
        var errors = (result.Details ?? [])
            .Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation} ({d.EvaluationPath}): {e.Value}"))
            .Take(10);
        return string.Join("\n", errors);
    }

    private static string Rewrite(string json) => ComponentRef().Replace(json, "#/$$defs/");

    [GeneratedRegex("#/components/schemas/")]
    private static partial Regex ComponentRef();
}
