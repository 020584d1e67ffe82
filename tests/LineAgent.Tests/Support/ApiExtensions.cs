using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using LineAgent.Api;

namespace LineAgent.Tests.Support;

public static class ApiExtensions
{
    public static readonly JsonSerializerOptions Json = AgentJson.Options;

    public static Task<HttpResponseMessage> SendMessageAsync(this HttpClient client, object body, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/messages") { Content = JsonContent.Create(body) };
        if (idempotencyKey is not null)
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        return client.SendAsync(request);
    }

    public static async Task<JsonObject> JsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonNode.Parse(text)?.AsObject() ?? throw new AssertionException($"Not a JSON object: {text}");
    }

    public static async Task<JsonObject> ExpectAsync(this HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(status), $"Body: {text}");
        return JsonNode.Parse(text)?.AsObject() ?? new JsonObject();
    }

    /// <summary>The items of one page of a list (<c>{ items, nextCursor }</c>).</summary>
    public static async Task<List<JsonObject>?> GetItemsAsync(this HttpClient client, string url) =>
        (await client.GetJsonAsync(url))["items"]!.AsArray().Select(n => n!.AsObject()).ToList();

    public static async Task<JsonObject> GetJsonAsync(this HttpClient client, string url) =>
        await (await client.GetAsync(url)).ExpectAsync(HttpStatusCode.OK);

    public static string Str(this JsonNode? node, string name) => node?[name]?.GetValue<string>() ?? throw new AssertionException($"missing {name} in {node}");

    public static string? StrOrNull(this JsonNode? node, string name) => node?[name] is JsonValue v ? v.GetValue<string>() : null;

    /// <summary>The `field` values of a 400's `problems`.</summary>
    public static string[] ProblemFields(this JsonObject problem) =>
        problem["problems"]!.AsArray().Select(p => p!["field"]!.GetValue<string>()).ToArray();

    public static string[] ProblemCodes(this JsonObject problem) =>
        problem["problems"]!.AsArray().Select(p => p!["code"]!.GetValue<string>()).ToArray();
}
