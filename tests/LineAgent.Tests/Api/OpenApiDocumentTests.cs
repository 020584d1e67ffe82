using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Tests.Support;
using LineAgent.Webhooks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace LineAgent.Tests.Api;

/// <summary>The served /openapi/v1.json describes every answer the endpoints can give, as their own metadata says.</summary>
public sealed class OpenApiDocumentTests : AgentTest
{
    private OpenApiSpec _spec = null!;

    [SetUp]
    public async Task ReadDocument()
    {
        using var anonymous = Agent.CreateClient();
        _spec = await OpenApiSpec.FetchAsync(anonymous);
    }

    private IEnumerable<RouteEndpoint> ApiEndpoints() =>
        Agent.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api/", StringComparison.Ordinal) == true)
            .Where(e => e.Metadata.GetMetadata<IExcludeFromDescriptionMetadata>()?.ExcludeFromDescription != true)
            .Where(e => e.Metadata.GetMetadata<IHttpMethodMetadata>() is not null);

    private OpenApiOperation OperationOf(RouteEndpoint endpoint)
    {
        var path = "/" + endpoint.RoutePattern.RawText!.Trim('/');
        var method = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Single();
        return _spec.Operations.SingleOrDefault(o => o.Path == path && o.Method == method)
            ?? throw new AssertionException($"{method} {path} is mapped but not in the document");
    }

    [Test]
    public void EveryApiOperation_ShouldRequireTheBearerTokenAndDocumentIts401Problem()
    {
        var scheme = _spec.Root["components"]!["securitySchemes"]![OpenApiDocumentation.BearerScheme]!;
        Assert.That((scheme["type"]!.GetValue<string>(), scheme["scheme"]!.GetValue<string>()), Is.EqualTo(("http", "bearer")));
        var operations = _spec.Operations.Where(o => o.Path.StartsWith("/api/", StringComparison.Ordinal)).ToList();
        Assert.That(operations, Has.Count.GreaterThanOrEqualTo(30));
        Assert.Multiple(() =>
        {
            foreach (var op in operations)
            {
                var security = op.Node["security"]?.AsArray();
                Assert.That(security?.Any(r => r!.AsObject().ContainsKey(OpenApiDocumentation.BearerScheme)), Is.True, $"{op}: no bearer requirement");
                Assert.That(ProblemRef(op, "401"), Is.EqualTo("#/components/schemas/Problem"), $"{op}: 401 problem");
            }
        });
    }

    [Test]
    public void EveryStatusAnEndpointDeclares_ShouldBeDocumentedWithItsContent()
    {
        var endpoints = ApiEndpoints().ToList();
        Assert.That(endpoints, Has.Count.EqualTo(_spec.Operations.Count(o => o.Path.StartsWith("/api/", StringComparison.Ordinal))),
            "every described /api endpoint is one operation of the document");
        Assert.Multiple(() =>
        {
            foreach (var endpoint in endpoints)
            {
                var op = OperationOf(endpoint);
                // What the handler's Results<...> type and its ProducesProblem/Produces calls declare.
                foreach (var produces in endpoint.Metadata.GetOrderedMetadata<IProducesResponseTypeMetadata>())
                {
                    var code = produces.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    Assert.That(op.Responses.ContainsKey(code), Is.True, $"{op}: {code} is declared by the endpoint but not documented");
                    if (!op.Responses.ContainsKey(code))
                        continue;
                    var content = op.Responses[code]!["content"]?.AsObject();
                    if (produces.StatusCode >= 400)
                        Assert.That(ProblemRef(op, code), Is.EqualTo("#/components/schemas/Problem"), $"{op}: {code} is a problem");
                    else
                        foreach (var type in produces.ContentTypes)
                            Assert.That(content?.ContainsKey(type), Is.True, $"{op}: {code} {type} not documented");
                }
                if (endpoint.RoutePattern.Parameters.Count > 0)
                    Assert.That(ProblemRef(op, "404"), Is.Not.Null, $"{op}: a route with a path parameter documents 404");
                if (endpoint.Metadata.GetMetadata<IdempotencyKeyMetadata>() is not null)
                    Assert.That(ProblemRef(op, "409"), Is.Not.Null, $"{op}: an idempotent route documents 409");
                if (endpoint.Metadata.GetMetadata<IAcceptsMetadata>() is not null)
                {
                    Assert.That(ProblemRef(op, "415"), Is.Not.Null, $"{op}: a route that reads a body documents 415");
                    Assert.That(ProblemRef(op, "413"), Is.Not.Null, $"{op}: a route that reads a body documents 413");
                }
            }
        });
    }

    [TestCase("SendMessage", "201", "202", "400", "404", "409", "500")]
    [TestCase("RetryMessage", "201", "202", "400", "404", "409", "500")]
    [TestCase("SendBulk", "202", "400", "404", "409")]
    [TestCase("UpdateMessage", "200", "400", "404", "409")]
    [TestCase("CancelMessage", "200", "404", "409")]
    [TestCase("CreateLead", "200", "201", "400", "409")]
    [TestCase("UpdateLead", "200", "400", "404", "409")]
    [TestCase("ImportLeads", "200", "400", "413", "415")]
    [TestCase("GetSuppression", "200", "400", "404")]
    [TestCase("RemoveSuppression", "204", "400", "404")]
    [TestCase("CancelBatch", "200", "404")]
    [TestCase("ListWebhookDeliveries", "200", "400", "404")]
    [TestCase("PreviewBulk", "200", "400", "415")]
    [TestCase("GetSequence", "200", "404")]
    [TestCase("CancelSequence", "200", "404")]
    public void Operation_ShouldDocumentEveryAnswerItGives(string id, params string[] statuses)
    {
        var op = _spec.Operation(id);
        Assert.That(op.Responses.Select(r => r.Key), Is.SupersetOf(statuses.Append("401")));
        Assert.That(op.Node["summary"]?.GetValue<string>(), Is.Not.Empty);
        Assert.That(op.Node["description"]?.GetValue<string>(), Is.Not.Empty);
    }

    [TestCase("/api/messages/{id}")]
    [TestCase("/api/messages/{id}/events")]
    [TestCase("/api/messages/{id}/replies")]
    [TestCase("/api/messages/{id}/cancel")]
    [TestCase("/api/messages/{id}/retry")]
    [TestCase("/api/lines/{id}")]
    [TestCase("/api/suppressions/{address}")]
    [TestCase("/api/leads/{id}")]
    [TestCase("/api/batches/{batchId}")]
    [TestCase("/api/batches/{batchId}/cancel")]
    [TestCase("/api/webhooks/{id}")]
    [TestCase("/api/webhooks/{id}/deliveries")]
    [TestCase("/api/sequences/{id}")]
    [TestCase("/api/sequences/{id}/cancel")]
    public void EveryRouteWithAnIdOrAddress_ShouldDocument404(string path)
    {
        var ops = _spec.Operations.Where(o => o.Path == path).ToList();
        Assert.That(ops, Is.Not.Empty);
        foreach (var op in ops)
            Assert.That(ProblemRef(op, "404"), Is.EqualTo("#/components/schemas/Problem"), op.ToString());
    }

    [TestCase("ListMessages")]
    [TestCase("ExportMessages")]
    public void HistoryRoutes_ShouldTypeEveryFilter(string id)
    {
        var op = _spec.Operation(id);
        JsonNode Schema(string name) => op.Parameter(name)?["schema"] ?? throw new AssertionException($"{op}: no {name}");
        Assert.Multiple(() =>
        {
            // Named components, so a generated client has MessageStatusFilter.Sent rather than Anonymous.Sent.
            Assert.That(Schema("status")["items"]!["$ref"]!.GetValue<string>(), Is.EqualTo("#/components/schemas/MessageStatusFilter"));
            Assert.That(_spec.Resolve(Schema("status")["items"]!.AsObject())["enum"]!.AsArray().Select(v => v!.GetValue<string>()), Is.EquivalentTo(MessageStatus.All));
            Assert.That(op.Parameter("status")!["explode"]!.GetValue<bool>(), Is.False, "comma-separated");
            Assert.That(_spec.Resolve(Schema("type")["items"]!.AsObject())["enum"]!.AsArray().Select(v => v!.GetValue<string>()), Is.EquivalentTo(MessageType.Concrete));
            Assert.That(_spec.Resolve(Schema("direction").AsObject())["enum"]!.AsArray().Select(v => v!.GetValue<string>()), Is.EquivalentTo(new[] { "inbound", "outbound" }));
            foreach (var time in new[] { "from", "to" })
                Assert.That((Schema(time)["type"]!.GetValue<string>(), Schema(time)["format"]!.GetValue<string>()), Is.EqualTo(("string", "date-time")));
            foreach (var text in new[] { "lineId", "leadId", "batchId", "recipient", "q" })
                Assert.That(Schema(text)["type"]!.GetValue<string>(), Is.EqualTo("string"), text);
        });
        if (id == "ListMessages")
        {
            var limit = Schema("limit");
            Assert.That((limit["type"]!.GetValue<string>(), limit["minimum"]!.GetValue<int>(), limit["maximum"]!.GetValue<int>(), limit["default"]!.GetValue<int>()),
                Is.EqualTo(("integer", 1, 500, 50)));
            Assert.That(Schema("cursor")["type"]!.GetValue<string>(), Is.EqualTo("string"));
        }
        else
        {
            Assert.That(Schema("format")["enum"]!.AsArray().Select(v => v!.GetValue<string>()), Is.EqualTo(new[] { "csv", "ndjson" }));
            Assert.That(op.Responses["200"]!["content"]!.AsObject().Select(c => c.Key), Is.EquivalentTo(new[] { "text/csv", "application/x-ndjson" }));
        }
    }

    [TestCase("ListLeads", 500)]
    [TestCase("ListSuppressions", 500)]
    public void OtherLists_ShouldTypeLimitAndCursor(string id, int maximum)
    {
        var op = _spec.Operation(id);
        var limit = op.Parameter("limit")!["schema"]!;
        Assert.That((limit["type"]!.GetValue<string>(), limit["minimum"]!.GetValue<int>(), limit["maximum"]!.GetValue<int>()), Is.EqualTo(("integer", 1, maximum)));
        Assert.That(op.Parameter("cursor")!["schema"]!["type"]!.GetValue<string>(), Is.EqualTo("string"));
    }

    [Test]
    public void RetryForceAndIdempotencyKey_ShouldBeDocumented()
    {
        Assert.That(_spec.Operation("RetryMessage").Parameter("force")!["schema"]!["type"]!.GetValue<string>(), Is.EqualTo("boolean"));
        var withKey = _spec.Operations.Where(o => o.Parameter(IdempotencyStore.Header) is not null).Select(o => o.Id);
        Assert.That(withKey, Is.EquivalentTo(new[] { "SendMessage", "RetryMessage", "SendBulk" }));
        var header = _spec.Operation("SendMessage").Parameter(IdempotencyStore.Header)!;
        Assert.That((header["in"]!.GetValue<string>(), header["required"]?.GetValue<bool>() ?? false), Is.EqualTo(("header", false)));
    }

    [TestCase("SendMessageRequest", "content")]
    [TestCase("BulkRequest", "content")]
    [TestCase("WebhookRequest", "url")]
    [TestCase("AddSuppressionRequest", "address")]
    [TestCase("AvailabilityRequest", "addresses")]
    [TestCase("UpdateLineRequest", "active")]
    [TestCase("LeadInput")]
    [TestCase("UpdateMessageRequest")]
    [TestCase("LeadFilterRequest")]
    public void RequestBodies_ShouldRequireWhatTheAgentRequiresAndNothingElse(string schema, params string[] required)
    {
        var node = _spec.Schema(schema);
        var listed = node["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToArray() ?? [];
        Assert.That(listed, Is.EquivalentTo(required));
        foreach (var name in required)
            Assert.That(node["properties"]![name]!["type"]!.ToJsonString(), Does.Not.Contain("null"), $"{schema}.{name} is required, so not null");
    }

    [TestCase("SendMessageRequest", "type", "auto", "imessage", "sms", "email")]
    [TestCase("BulkRequest", "type", "auto", "imessage", "sms", "email")]
    [TestCase("MessageDto", "type", "imessage", "sms", "email")]
    [TestCase("MessageDto", "status", "scheduled", "queued", "sending", "sent", "failed", "cancelled", "received")]
    [TestCase("MessageDto", "delivery", "unknown", "delivered", "read", "not_delivered")]
    [TestCase("AvailabilityResult", "imessage", "available", "unavailable", "unknown")]
    [TestCase("MessageDto", "recipientTimeZoneSource", "number", "lead", "line")]
    [TestCase("BulkPreviewEntry", "recipientTimeZoneSource", "number", "lead", "line")]
    [TestCase("BulkPreviewEntry", "type", "imessage", "sms", "email")]
    [TestCase("SequenceDto", "status", "active", "completed", "stopped")]
    public void EnumFields_ShouldListTheirValues(string schema, string property, params string[] values)
    {
        var node = _spec.Schema(schema)["properties"]![property]!;
        Assert.That(node["enum"]!.AsArray().Where(v => v is not null).Select(v => v!.GetValue<string>()), Is.EqualTo(values));
    }

    /// <summary>The types a property may have ("null" included), through a nullable oneOf/anyOf.</summary>
    private static string[] TypesOf(JsonNode property)
    {
        IEnumerable<string> Own(JsonNode? n) => n?["type"] switch
        {
            JsonArray a => a.Select(t => t!.GetValue<string>()),
            JsonValue v => [v.GetValue<string>()],
            _ => n?["$ref"] is null ? [] : ["$ref"],
        };
        var alternatives = (property["oneOf"] ?? property["anyOf"])?.AsArray().Select(a => a!) ?? [];
        return Own(property).Concat(alternatives.SelectMany(Own)).Distinct().Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The object schema of a property: inline, a $ref, or the $ref in a nullable oneOf/anyOf.</summary>
    private JsonObject ObjectOf(JsonNode property)
    {
        var node = (property["oneOf"] ?? property["anyOf"])?.AsArray().Select(a => a!).FirstOrDefault(a => a["$ref"] is not null) ?? property;
        var resolved = _spec.Resolve(node.AsObject());
        Assert.That(TypesOf(resolved), Does.Contain("object"), resolved.ToJsonString());
        return resolved;
    }

    [TestCase("SendMessageRequest", "RecipientWindowRequest")]
    [TestCase("BulkRequest", "RecipientWindowRequest")]
    public void FollowUpFieldsOfARequest_ShouldBeTyped(string schema, string windowSchema)
    {
        var properties = _spec.Schema(schema)["properties"]!;
        Assert.Multiple(() =>
        {
            Assert.That(TypesOf(properties["stopOnReply"]!), Is.EquivalentTo(new[] { "boolean", "null" }), "stopOnReply");
            Assert.That(TypesOf(properties["followUps"]!), Is.EquivalentTo(new[] { "array", "null" }), "followUps");
            var followUp = ObjectOf(properties["followUps"]!["items"]!);
            Assert.That(TypesOf(followUp["properties"]!["after"]!), Is.EqualTo(new[] { "string" }), "followUps[].after");
            Assert.That(TypesOf(followUp["properties"]!["content"]!), Is.EqualTo(new[] { "string" }), "followUps[].content");
            Assert.That(followUp["required"]!.AsArray().Select(r => r!.GetValue<string>()), Is.EquivalentTo(new[] { "after", "content" }),
                "the agent answers 400 for a follow-up without either");
            Assert.That(followUp["properties"]!["after"]!["description"]!.GetValue<string>(), Does.Contain("ISO 8601 duration"));

            Assert.That(properties["recipientWindow"]!.ToJsonString(), Does.Contain($"#/components/schemas/{windowSchema}"));
            var window = ObjectOf(properties["recipientWindow"]!);
            foreach (var end in new[] { "from", "to" })
                Assert.That(TypesOf(window["properties"]![end]!), Is.EqualTo(new[] { "string" }), $"recipientWindow.{end}");
            Assert.That(window["required"]!.AsArray().Select(r => r!.GetValue<string>()), Is.EquivalentTo(new[] { "from", "to" }));
        });
    }

    [Test]
    public void FollowUpFieldsOfAMessage_ShouldBeTyped()
    {
        var properties = _spec.Schema("MessageDto")["properties"]!;
        Assert.Multiple(() =>
        {
            Assert.That(TypesOf(properties["stopOnReply"]!), Is.EqualTo(new[] { "boolean" }), "stopOnReply");
            Assert.That(TypesOf(properties["waitingForPreviousStep"]!), Is.EqualTo(new[] { "boolean" }), "waitingForPreviousStep");
            Assert.That(TypesOf(properties["sequenceId"]!), Is.EquivalentTo(new[] { "string", "null" }), "sequenceId");
            Assert.That(TypesOf(properties["sequenceStep"]!), Is.EquivalentTo(new[] { "integer", "null" }), "sequenceStep");
            Assert.That(TypesOf(properties["followUpAfter"]!), Is.EquivalentTo(new[] { "string", "null" }), "followUpAfter");
            Assert.That(TypesOf(properties["recipientTimeZone"]!), Is.EquivalentTo(new[] { "string", "null" }), "recipientTimeZone");
            Assert.That(TypesOf(properties["recipientTimeZoneSource"]!), Is.EquivalentTo(new[] { "string", "null" }), "recipientTimeZoneSource");
            Assert.That(TypesOf(properties["recipientWindow"]!), Does.Contain("null"), "recipientWindow is null on a message without one");
            var window = ObjectOf(properties["recipientWindow"]!);
            foreach (var end in new[] { "from", "to" })
                Assert.That(TypesOf(window["properties"]![end]!), Is.EqualTo(new[] { "string" }), $"recipientWindow.{end}");
            var required = _spec.Schema("MessageDto")["required"]!.AsArray().Select(r => r!.GetValue<string>());
            Assert.That(required, Is.SupersetOf(new[]
            {
                "stopOnReply", "sequenceId", "sequenceStep", "followUpAfter", "waitingForPreviousStep", "recipientWindow", "recipientTimeZone", "recipientTimeZoneSource",
            }), "every message carries them, null or not");
        });
    }

    [Test]
    public void BulkPreviewAndSequences_ShouldBeDocumentedWithTheirTypes()
    {
        var preview = _spec.Operation("PreviewBulk");
        Assert.That((preview.Method, preview.Path), Is.EqualTo(("POST", "/api/messages/bulk/preview")));
        Assert.That(preview.RequestSchema()!["$ref"]!.GetValue<string>(), Is.EqualTo("#/components/schemas/BulkRequest"), "the same body as /bulk");
        Assert.That(preview.Responses["200"]!["content"]!["application/json"]!["schema"]!["$ref"]!.GetValue<string>(),
            Is.EqualTo("#/components/schemas/BulkPreviewResponse"));

        var response = _spec.Schema("BulkPreviewResponse")["properties"]!;
        var entry = _spec.Resolve(response["messages"]!["items"]!.AsObject())["properties"]!;
        var followUp = _spec.Resolve(entry["followUps"]!["items"]!.AsObject())["properties"]!;
        Assert.Multiple(() =>
        {
            foreach (var (name, node) in new[] { ("messages[].estimatedSendAt", entry["estimatedSendAt"]!), ("messages[].followUps[].estimatedSendAt", followUp["estimatedSendAt"]!),
                         ("firstSendAt", response["firstSendAt"]!), ("lastSendAt", response["lastSendAt"]!) })
            {
                Assert.That(node["format"]?.GetValue<string>(), Is.EqualTo("date-time"), name);
                Assert.That(TypesOf(node), Is.EquivalentTo(new[] { "string", "null" }), $"{name}: null when rejected or beyond the horizon");
            }
            Assert.That(TypesOf(followUp["step"]!), Is.EqualTo(new[] { "integer" }));
            foreach (var count in new[] { "total", "sendable", "rejected", "suppressed", "alreadyQueued" })
                Assert.That(TypesOf(response[count]!), Is.EqualTo(new[] { "integer" }), count);
            foreach (var totals in new[] { "byType", "byDay" })
                Assert.That(response[totals]!["additionalProperties"]!["type"]!.GetValue<string>(), Is.EqualTo("integer"), totals);
        });

        var get = _spec.Operation("GetSequence");
        var cancel = _spec.Operation("CancelSequence");
        Assert.That((get.Method, get.Path, cancel.Method, cancel.Path), Is.EqualTo(("GET", "/api/sequences/{id}", "POST", "/api/sequences/{id}/cancel")));
        Assert.That(get.Responses["200"]!["content"]!["application/json"]!["schema"]!["$ref"]!.GetValue<string>(), Is.EqualTo("#/components/schemas/SequenceDto"));
        var steps = _spec.Schema("SequenceDto")["properties"]!["steps"]!;
        Assert.That(steps["items"]!["$ref"]!.GetValue<string>(), Is.EqualTo("#/components/schemas/MessageDto"));
        Assert.That(_spec.Resolve(cancel.Responses["200"]!["content"]!["application/json"]!["schema"]!.AsObject())["properties"]!["sequence"]!.ToJsonString(),
            Does.Contain("#/components/schemas/SequenceDto"));
    }

    [Test]
    public void WebhookEvents_ShouldBeAnEnumOnRequestAndResponse()
    {
        foreach (var schema in new[] { "WebhookRequest", "WebhookDto" })
            Assert.That(_spec.Schema(schema)["properties"]!["events"]!["items"]!["enum"]!.AsArray().Select(v => v!.GetValue<string>()),
                Is.EquivalentTo(WebhookEvents.All), schema);
    }

    [Test]
    public void Schemas_ShouldTypeTimesAsDateTimeStringsAndIntegersAsIntegers()
    {
        var times = new List<string>();
        Assert.Multiple(() =>
        {
            foreach (var (name, schema) in _spec.Root["components"]!["schemas"]!.AsObject())
            {
                foreach (var (property, node) in schema!["properties"]?.AsObject() ?? [])
                {
                    var type = node!["type"]?.ToJsonString() ?? "";
                    Assert.That(type.Contains("integer") && type.Contains("string"), Is.False, $"{name}.{property} is an integer, not a string: {type}");
                    Assert.That(node["pattern"], Is.Null, $"{name}.{property} has no number pattern");
                    if (node["format"]?.GetValue<string>() == "date-time")
                    {
                        times.Add($"{name}.{property}");
                        Assert.That(type, Does.Contain("string"), $"{name}.{property}: a date-time is a string");
                    }
                }
            }
        });
        Assert.That(times, Is.SupersetOf(new[]
        {
            "MessageDto.createdAt", "MessageDto.sentAt", "MessageDto.scheduledAt", "SendMessageRequest.scheduledAt", "UpdateMessageRequest.scheduledAt",
            "BulkRequest.scheduledAt", "LeadDto.createdAt", "WebhookDto.createdAt", "AvailabilityResult.checkedAt", "AgentStatus.startedAt",
        }));
        var dto = _spec.Schema("MessageDto")["properties"]!;
        Assert.That(dto["createdAt"]!["type"]!.GetValue<string>(), Is.EqualTo("string"));
        Assert.That(dto["sentAt"]!["type"]!.AsArray().Select(t => t!.GetValue<string>()), Is.EquivalentTo(new[] { "string", "null" }));
    }

    [Test]
    public void ProblemSchema_ShouldCarryCodeFieldListAndTheFailedMessage()
    {
        var problem = _spec.Schema("Problem");
        Assert.That(problem["required"]!.AsArray().Select(r => r!.GetValue<string>()), Is.SupersetOf(new[] { "code", "status", "title" }));
        var properties = problem["properties"]!.AsObject();
        Assert.That(properties.Select(p => p.Key), Is.SupersetOf(new[] { "code", "problems", "errors", "messageId", "message", "detail" }));
        Assert.That(_spec.Resolve(properties["problems"]!["items"]!.AsObject())["required"]!.AsArray().Select(r => r!.GetValue<string>()),
            Is.EquivalentTo(new[] { "field", "code", "detail" }));
        Assert.That(properties["message"]!.ToJsonString(), Does.Contain("#/components/schemas/MessageDto"));
        Assert.That(_spec.Operation("SendMessage").Responses["500"]!["description"]!.GetValue<string>(), Does.Contain("messageId"));
    }

    [Test]
    public void Document_ShouldDescribeItselfForClientsAndLinters()
    {
        var info = _spec.Root["info"]!;
        Assert.Multiple(() =>
        {
            Assert.That(_spec.Root["openapi"]!.GetValue<string>(), Does.StartWith("3.1"));
            Assert.That(info["title"]!.GetValue<string>(), Is.EqualTo("LineAgent API"));
            Assert.That(info["description"]!.GetValue<string>(), Does.Contain("Bearer"));
            Assert.That(info["contact"]!["name"]!.GetValue<string>(), Is.Not.Empty);
            Assert.That(info["license"]!["identifier"]!.GetValue<string>(), Is.Not.Empty);
            var servers = _spec.Root["servers"]!.AsArray().Select(s => s!["url"]!.GetValue<string>()).ToList();
            Assert.That(servers, Is.EqualTo(new[] { LineAgent.Hosting.ApiOptions.DefaultUrl }));
            var tags = _spec.Root["tags"]!.AsArray().ToDictionary(t => t!["name"]!.GetValue<string>(), t => t!["description"]?.GetValue<string>());
            foreach (var op in _spec.Operations)
            {
                Assert.That(op.Node["summary"]?.GetValue<string>(), Is.Not.Empty, $"{op}: summary");
                Assert.That(op.Node["description"]?.GetValue<string>(), Is.Not.Empty, $"{op}: description");
                foreach (var tag in op.Node["tags"]!.AsArray().Select(t => t!.GetValue<string>()))
                    Assert.That(tags.GetValueOrDefault(tag), Is.Not.Empty, $"{op}: tag {tag} is described");
            }
            Assert.That(tags["Messages"], Is.EqualTo(OpenApiDocumentation.TagDescriptions["Messages"]));
        });
    }

    [Test]
    public void LineViews_ShouldBeTyped()
    {
        var line = _spec.Schema("LineDto")["properties"]!;
        Assert.That(line["usage"]!.ToJsonString(), Does.Contain("#/components/schemas/LineUsage"));
        Assert.That(_spec.Schema("PacingDto")["properties"]!.AsObject().Select(p => p.Key), Does.Contain("note"));
        Assert.That(typeof(PacingDto).GetProperty(nameof(PacingDto.Note)), Is.Not.Null);
    }

    [Test]
    public async Task TheOpenApiCommand_ShouldPrintTheServedDocumentWithoutListening()
    {
        var result = await Programs.LineAgentAsync("openapi");
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Stderr);
        var printed = JsonNode.Parse(result.Stdout)!.AsObject();
        // Same endpoints, same schemas (the command builds the same app; nothing else differs without Api:Urls).
        Assert.That(JsonNode.DeepEquals(printed["paths"], _spec.Root["paths"]), Is.True, "paths differ");
        Assert.That(JsonNode.DeepEquals(printed["components"], _spec.Root["components"]), Is.True, "components differ");
        Assert.That(JsonNode.DeepEquals(printed["info"], _spec.Root["info"]), Is.True, "info differs");
    }

    /// <summary>The `$ref` of the problem+json schema of one response, or null when the response is not there.</summary>
    private static string? ProblemRef(OpenApiOperation op, string status) =>
        op.Responses[status]?["content"]?["application/problem+json"]?["schema"]?["$ref"]?.GetValue<string>();
}
