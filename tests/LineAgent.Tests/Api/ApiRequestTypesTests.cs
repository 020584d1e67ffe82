using System.Text.Json;
using LineAgent.Api;
using LineAgent.Tests.Support;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Api;

/// <summary>
/// Every JSON body the API reads refuses a field its type does not have (AgentJson.ConfigureRequests), and only
/// request types are closed: the OpenAPI document keeps the answers' schemas open to fields added later.
/// </summary>
public sealed class ApiRequestTypesTests : AgentTest
{
    [Test]
    public void EveryJsonRequestBody_ShouldRefuseAFieldItDoesNotHave()
    {
        var options = Agent.Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var bodies = Agent.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .SelectMany(e => e.Metadata.GetOrderedMetadata<IAcceptsMetadata>())
            .Where(a => a.RequestType is { } t && t.Assembly == typeof(AgentJson).Assembly && a.ContentTypes.Contains("application/json"))
            .Select(a => a.RequestType!).Distinct().ToList();
        Assert.That(bodies, Has.Count.GreaterThanOrEqualTo(9), string.Join(", ", bodies.Select(t => t.Name)));
        foreach (var type in bodies)
        {
            Assert.That(AgentJson.IsRequestBody(type), Is.True, $"{type.Name} is read from a request body");
            Assert.Throws<JsonException>(() => JsonSerializer.Deserialize("""{"zzNotAField":1}""", type, options), type.Name);
        }
    }

    [Test]
    public async Task TheOpenApiDocument_ShouldCloseRequestSchemasOnly()
    {
        using var anonymous = Agent.CreateClient();
        var spec = await OpenApiSpec.FetchAsync(anonymous);
        var schemas = spec.Root["components"]!["schemas"]!.AsObject();
        Assert.That(schemas["SendMessageRequest"]!["additionalProperties"]?.GetValue<bool>(), Is.False);
        Assert.That(schemas["MessageDto"]!["additionalProperties"], Is.Null, "an answer may gain fields");
    }
}
