using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using LineAgent.Hosting;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc.ApiExplorer;
using Microsoft.AspNetCore.Mvc.ModelBinding;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace LineAgent.Api;

/// <summary>
/// The OpenAPI document (/openapi/v1.json, `lineagent openapi`), built from the endpoints' own metadata: their
/// TypedResults, ProducesProblem, Accepts, and the agent's <see cref="QueryParametersMetadata"/> and
/// <see cref="IdempotencyKeyMetadata"/>. The transformers below add what applies to every route by rule (the
/// bearer scheme and its 401, a 404 wherever the path names something, 413 and 415 wherever a body is read, the
/// problem schema on every error), so a new endpoint is described without touching this file.
/// </summary>
public static class OpenApiDocumentation
{
    public const string DocumentName = "v1";
    public const string BearerScheme = "bearer";
    public const string Title = "LineAgent API";

    /// <summary>There is no LICENSE file in the repository yet: the document says so instead of inventing one.</summary>
    public const string LicenseName = "Proprietary: all rights reserved";
    public const string LicenseIdentifier = "LicenseRef-LineAgent-Proprietary";

    public static readonly IReadOnlyDictionary<string, string> TagDescriptions = new Dictionary<string, string>
    {
        ["Messages"] = "Send one message now or at a time; the history with filters, paging and export; a message's events and replies; edit, cancel, retry.",
        ["Batches"] = "One template to many leads (a bulk send), and the batch it makes: counts per status and type, cancel what has not gone out.",
        ["Leads"] = "People to send to: phone, email, name, company, free fields and tags; CSV import; duplicates by phone or email are merged.",
        ["Lines"] = "The sending lines of this agent: channel health, pacing limits and today's usage; pause and resume.",
        ["Availability"] = "Whether an address has iMessage (the blue or gray bubble), and what `auto` would send as.",
        ["Suppressions"] = "The opt-out list: sends to a listed address fail with `suppressed`. STOP-style replies add to it.",
        ["Webhooks"] = "Subscriptions to message events, signed as Standard Webhooks says, and each subscription's delivery log.",
        ["Status"] = "The agent at a glance, for the menu bar: version, dry run, lines, counts, the next scheduled time, the last error.",
    };

    public static IServiceCollection AddAgentOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(DocumentName, o =>
        {
            o.CreateSchemaReferenceId = type => type.Type == typeof(ProblemBody)
                ? ProblemBody.SchemaId
                : OpenApiOptions.CreateDefaultSchemaReferenceId(type);
            o.AddSchemaTransformer<AgentSchemaTransformer>();
            o.AddOperationTransformer<AgentOperationTransformer>();
            o.AddDocumentTransformer<AgentDocumentTransformer>();
        });

    /// <summary>
    /// The document as JSON (OpenAPI 3.1) of the endpoints <paramref name="app"/> maps, made in a container of its own that
    /// takes the app's endpoints, parameter inference, JSON settings and `Api` settings: the OpenAPI generator and what it
    /// loads (ASP.NET Core's API explorer and MVC core, Microsoft.OpenApi: about 2.3 MB of the agent's memory) are loaded
    /// only when the document is asked for (`GET /openapi/v1.json`, `lineagent openapi`), not at every start.
    /// </summary>
    public static async Task<string> WriteJsonAsync(IServiceProvider app, CancellationToken ct = default)
    {
        var services = new ServiceCollection();
        services.AddSingleton(app.GetRequiredService<IHostEnvironment>());
        services.AddSingleton(app.GetRequiredService<IWebHostEnvironment>());
        services.AddSingleton(app.GetRequiredService<EndpointDataSource>());
        services.AddSingleton(app.GetRequiredService<Microsoft.AspNetCore.Routing.ParameterPolicyFactory>());
        if (app.GetService<Microsoft.AspNetCore.Hosting.Server.IServer>() is { } server)
            services.AddSingleton(server);
        services.AddSingleton(app.GetRequiredService<IOptions<ApiOptions>>());
        services.AddLogging();
        services.ConfigureHttpJsonOptions(o => AgentJson.ConfigureRequests(o.SerializerOptions));
        services.AddAgentOpenApi();
        // Which handler parameters are services decides what the document lists as parameters and bodies: the app's answer,
        // not this container's (a container always answers that question itself, so the API explorer is given it).
        var appServices = app.GetRequiredService<IServiceProviderIsService>();
        for (var i = 0; i < services.Count; i++)
            if (services[i] is { ServiceType: var type, ImplementationType: { } explorer } && type == typeof(IApiDescriptionProvider))
                services[i] = ServiceDescriptor.Transient<IApiDescriptionProvider>(sp => (IApiDescriptionProvider)ActivatorUtilities.CreateInstance(sp, explorer, appServices));
        await using var document = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = false, ValidateScopes = true });
        var provider = document.GetRequiredKeyedService<IOpenApiDocumentProvider>(DocumentName);
        var made = await provider.GetOpenApiDocumentAsync(ct);
        return await made.SerializeAsJsonAsync(OpenApiSpecVersion.OpenApi3_1, ct);
    }

    /// <summary>
    /// `GET /openapi/v1.json`, as `MapOpenApi` served it, from <see cref="WriteJsonAsync"/>: made at the first request (a
    /// concurrent one waits for it) and kept, as it only changes with the build and the settings.
    /// </summary>
    public static IEndpointConventionBuilder MapAgentOpenApi(this IEndpointRouteBuilder app)
    {
        var gate = new SemaphoreSlim(1, 1);
        string? made = null;
        return app.MapGet($"/openapi/{DocumentName}.json", async (HttpContext context) =>
        {
            var ct = context.RequestAborted;
            if (Volatile.Read(ref made) is not { } json)
            {
                await gate.WaitAsync(ct);
                try
                {
                    json = made ??= await WriteJsonAsync(context.RequestServices, ct);
                }
                finally
                {
                    gate.Release();
                }
            }
            context.Response.ContentType = "application/json;charset=utf-8";
            await context.Response.WriteAsync(json, ct);
        }).ExcludeFromDescription();
    }

    /// <summary>"SendMessage" → "Send message".</summary>
    public static string Humanize(string operationId)
    {
        var words = Regex.Split(operationId, "(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])");
        return string.Join(" ", words.Select((w, i) => i == 0 ? w : w.ToLowerInvariant()));
    }

    internal static string ServerUrl(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? ApiOptions.DefaultUrl;
        return first.Replace("://*", "://localhost").Replace("://+", "://localhost").TrimEnd('/');
    }
}

/// <summary>Info, contact, licence, server, the bearer scheme, tag descriptions; drops schemas nothing refers to.</summary>
internal sealed partial class AgentDocumentTransformer(IOptions<ApiOptions> api) : IOpenApiDocumentTransformer
{
    public async Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken ct)
    {
        document.Info = new OpenApiInfo
        {
            Title = OpenApiDocumentation.Title,
            Version = typeof(OpenApiDocumentation).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
            Summary = "Send iMessage, SMS and email from a Mac, now or at a time, and track every message.",
            Description = """
                The HTTP API of a LineAgent: a Mac that sends iMessage and SMS through Messages, email through SMTP and
                SMS through Twilio, now or at a scheduled time, and tracks every message.

                - **Auth**: `Authorization: Bearer <token>` on every `/api` route (`lineagent token` prints it). A missing
                  or wrong token is a 401.
                - **Errors**: RFC 9457 `application/problem+json` with a stable `code`; a 400 names every bad field in
                  `problems` (`field`, `code`, `detail`).
                - **Times**: ISO 8601; inputs may carry any offset, outputs are UTC with `Z`.
                - **Lists**: newest first, `limit` (1-500, default 50) and the opaque `cursor` from the previous page's
                  `nextCursor`.
                - **Idempotency-Key** on the POSTs that send: the same key and body replay the first answer and never send
                  twice; the same key with another body is a 409.
                """,
            Contact = new OpenApiContact { Name = "LineAgent maintainers (issues in the project's tracker)" },
            License = new OpenApiLicense { Name = OpenApiDocumentation.LicenseName, Identifier = OpenApiDocumentation.LicenseIdentifier },
        };
        document.Servers =
        [
            new OpenApiServer
            {
                Url = OpenApiDocumentation.ServerUrl(api.Value.Urls),
                Description = "This agent, at its Api:Urls (loopback only unless configured otherwise).",
            },
        ];

        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[OpenApiDocumentation.BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "The agent's API token: Api:Token, else the one generated into `<data dir>/api-token` (`lineagent token` prints it).",
        };

        var used = (document.Paths ?? [])
            .SelectMany(p => p.Value.Operations ?? [])
            .SelectMany(o => o.Value.Tags ?? new HashSet<OpenApiTagReference>())
            .Select(t => t.Name)
            .OfType<string>()
            .ToHashSet();
        document.Tags ??= new HashSet<OpenApiTag>();
        foreach (var name in used.Where(n => document.Tags.All(t => t.Name != n)))
            document.Tags.Add(new OpenApiTag { Name = name });
        foreach (var tag in document.Tags)
            tag.Description ??= OpenApiDocumentation.TagDescriptions.GetValueOrDefault(tag.Name ?? "") ?? $"{tag.Name} operations.";

        NullableObjects.Apply(document);
        await PruneUnusedSchemasAsync(document, ct);
    }

    /// <summary>The framework's ProblemDetails, IFormFile... are replaced by the transformers; an unused component is lint noise.</summary>
    private static async Task PruneUnusedSchemasAsync(OpenApiDocument document, CancellationToken ct)
    {
        var schemas = document.Components?.Schemas;
        if (schemas is null)
            return;
        for (var round = 0; round < 10; round++)
        {
            var json = await document.SerializeAsJsonAsync(OpenApiSpecVersion.OpenApi3_1, ct);
            var referenced = SchemaRef().Matches(json).Select(m => m.Groups[1].Value).ToHashSet();
            var unused = schemas.Keys.Where(k => !referenced.Contains(k)).ToList();
            if (unused.Count == 0)
                return;
            foreach (var key in unused)
                schemas.Remove(key);
        }
    }

    [GeneratedRegex("\"\\$ref\"\\s*:\\s*\"#/components/schemas/([^\"]+)\"")]
    private static partial Regex SchemaRef();
}

/// <summary>Per operation: security and 401, the statuses every route of its kind can give, parameters, the problem schema.</summary>
internal sealed class AgentOperationTransformer : IOpenApiOperationTransformer
{
    private static readonly Dictionary<int, string> ProblemDescriptions = new()
    {
        [400] = "The request is not valid: `problems` names every bad field (`field`, `code`, `detail`). Any operation answers 400 " +
            "`invalid_host` when the `Host` header is not localhost, an IP address or one of `Api:AllowedHosts`.",
        [401] = "Missing or wrong API token (`unauthorized`).",
        [404] = "Not found: `code` says what (`message_not_found`, `lead_not_found`, `line_not_found`, ...).",
        [409] = "Conflicts with the current state (`code`, e.g. `not_scheduled`, `not_cancellable`, `maybe_sent`, `already_retried`, `waiting_for_previous_step`), or an Idempotency-Key reused with another body (`idempotency_key_reused`).",
        [413] = "The body is larger than the agent reads (30,000,000 bytes; `payload_too_large`): nothing was stored.",
        [415] = "The body's Content-Type is not one this route reads (`unsupported_media_type`), or it is compressed (`unsupported_encoding`).",
        [500] = "`delivery_failed`: the message failed; `messageId` and `message` carry the failed record.",
        [503] = "The agent's storage cannot be written (`storage_full`, `storage_read_only`, `storage_error`): nothing was stored; try again after Retry-After.",
    };

    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var description = context.Description;
        var metadata = description.ActionDescriptor.EndpointMetadata;
        var path = "/" + (description.RelativePath ?? "").Split('?')[0];
        var isApi = path.StartsWith("/api/", StringComparison.Ordinal);
        var method = description.HttpMethod ?? "GET";
        operation.Responses ??= new OpenApiResponses();

        operation.Summary ??= operation.OperationId is { } id ? OpenApiDocumentation.Humanize(id) : $"{method} {path}";
        operation.Description ??= operation.Summary.EndsWith('.') ? operation.Summary : operation.Summary + ".";

        ApplyQueryParameters(operation, metadata, context.Document!);
        var idempotent = metadata.OfType<IdempotencyKeyMetadata>().Any();
        if (idempotent)
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = IdempotencyStore.Header,
                In = ParameterLocation.Header,
                Description = "Makes the request safe to repeat: the same key with the same body replays the first answer and never sends twice; " +
                    "the same key with another body is a 409 `idempotency_key_reused`. Keys are kept at least 24 h.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = IdempotencyStore.MaxKeyLength },
            });
        }
        ApplyUntypedContent(operation, metadata);
        ApplyEventStreams(operation);
        ApplyUploads(operation);

        var hasPathParameters = description.ParameterDescriptions.Any(p => p.Source == BindingSource.Path);
        var hasInput = operation.RequestBody is not null
            || (operation.Parameters ?? []).Any(p => p.In is ParameterLocation.Query or ParameterLocation.Header);
        if (isApi)
        {
            operation.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OpenApiDocumentation.BearerScheme, context.Document)] = [] },
            ];
            Ensure(operation, 401);
        }
        Ensure(operation, 400); // every operation: the Host guard (invalid_host), and validation where it has input
        if (hasPathParameters) Ensure(operation, 404);
        if (idempotent) Ensure(operation, 409);
        if (operation.RequestBody is not null)
        {
            Ensure(operation, 413);
            Ensure(operation, 415);
        }
        if (isApi && !HttpMethods.IsGet(method)) Ensure(operation, 503);

        var problem = await ProblemSchemaAsync(context, ct);
        foreach (var (code, response) in operation.Responses.ToList())
        {
            if (!int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out var status))
                continue;
            if (status >= 400)
                operation.Responses[code] = ProblemResponse(status, problem, response.Description);
            else if (status is 201 or 202 && response is OpenApiResponse created)
            {
                created.Headers ??= new Dictionary<string, IOpenApiHeader>();
                created.Headers["Location"] = new OpenApiHeader
                {
                    Description = "Where the created (or accepted) resource can be read.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                };
            }
        }
    }

    private static void Ensure(OpenApiOperation operation, int status) =>
        operation.Responses!.TryAdd(status.ToString(CultureInfo.InvariantCulture), new OpenApiResponse());

    private static OpenApiResponse ProblemResponse(int status, IOpenApiSchema problem, string? described)
    {
        var response = new OpenApiResponse
        {
            Description = ProblemDescriptions.GetValueOrDefault(status)
                ?? (string.IsNullOrWhiteSpace(described) ? $"{status}: a problem with a `code`." : described),
            Content = new Dictionary<string, OpenApiMediaType> { ["application/problem+json"] = new() { Schema = problem } },
        };
        var header = status switch
        {
            401 => ("WWW-Authenticate", "Bearer"),
            503 => ("Retry-After", "Seconds to wait before trying again."),
            _ => default((string, string)?),
        };
        if (header is var (name, text))
            response.Headers = new Dictionary<string, IOpenApiHeader>
            {
                [name] = new OpenApiHeader { Description = text, Schema = new OpenApiSchema { Type = JsonSchemaType.String } },
            };
        return response;
    }

    private static async Task<IOpenApiSchema> ProblemSchemaAsync(OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var document = context.Document!;
        if (document.Components?.Schemas?.ContainsKey(ProblemBody.SchemaId) != true)
        {
            var schema = await context.GetOrCreateSchemaAsync(typeof(ProblemBody), null, ct);
            // Nested types come inline from GetOrCreateSchemaAsync: refer to the components instead, so a client has one Message type.
            if (schema.Properties?[JsonName(nameof(ProblemBody.Problems))] is OpenApiSchema { Items: OpenApiSchema field } problems)
            {
                document.AddComponent(nameof(FieldProblem), field);
                problems.Items = new OpenApiSchemaReference(nameof(FieldProblem), document);
            }
            if (schema.Properties is { } properties)
            {
                if (document.Components?.Schemas?.ContainsKey(nameof(MessageDto)) != true)
                    document.AddComponent(nameof(MessageDto), await context.GetOrCreateSchemaAsync(typeof(MessageDto), null, ct));
                properties[JsonName(nameof(ProblemBody.Message))] = new OpenApiSchema
                {
                    Description = "On `delivery_failed`: the failed message.",
                    OneOf = [new OpenApiSchema { Type = JsonSchemaType.Null }, new OpenApiSchemaReference(nameof(MessageDto), document)],
                };
            }
            document.AddComponent(ProblemBody.SchemaId, schema);
        }
        return new OpenApiSchemaReference(ProblemBody.SchemaId, document);
    }

    private static string JsonName(string property) => System.Text.Json.JsonNamingPolicy.CamelCase.ConvertName(property);

    /// <summary>Declared query parameters replace the ones the framework inferred from a handler argument of the same name.</summary>
    private static void ApplyQueryParameters(OpenApiOperation operation, IList<object> metadata, OpenApiDocument document)
    {
        var declared = metadata.OfType<QueryParametersMetadata>().SelectMany(m => m.Parameters).ToList();
        if (declared.Count == 0)
            return;
        operation.Parameters ??= [];
        foreach (var q in declared)
        {
            var existing = operation.Parameters.FirstOrDefault(p => p.In == ParameterLocation.Query && p.Name == q.Name);
            var parameter = new OpenApiParameter
            {
                Name = q.Name,
                In = ParameterLocation.Query,
                Description = q.Description,
                Required = q.Required,
                Schema = QuerySchema(q, document),
            };
            if (q.Type == QueryType.EnumList)
            {
                parameter.Style = ParameterStyle.Form;
                parameter.Explode = false;
            }
            if (existing is null)
                operation.Parameters.Add(parameter);
            else
                operation.Parameters[operation.Parameters.IndexOf(existing)] = parameter;
        }
    }

    private static IOpenApiSchema QuerySchema(QueryParameter q, OpenApiDocument document)
    {
        var values = q.Values?.Select(v => (JsonNode)JsonValue.Create(v)).ToList();
        IOpenApiSchema EnumSchema()
        {
            var enumSchema = new OpenApiSchema { Type = JsonSchemaType.String, Enum = values };
            if (q.SchemaName is not { } name)
                return enumSchema;
            if (document.Components?.Schemas?.ContainsKey(name) != true)
            {
                enumSchema.Description = $"A value of the `{q.Name}` filter.";
                document.AddComponent(name, enumSchema);
            }
            return new OpenApiSchemaReference(name, document);
        }
        if (q.Type == QueryType.Enum && q.SchemaName is not null)
            return EnumSchema();
        var schema = q.Type switch
        {
            QueryType.Integer => new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32" },
            QueryType.Boolean => new OpenApiSchema { Type = JsonSchemaType.Boolean },
            QueryType.DateTime => new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time" },
            QueryType.Enum => new OpenApiSchema { Type = JsonSchemaType.String, Enum = values },
            QueryType.EnumList => new OpenApiSchema { Type = JsonSchemaType.Array, Items = EnumSchema() },
            _ => new OpenApiSchema { Type = JsonSchemaType.String },
        };
        if (q.Minimum is { } min) schema.Minimum = min.ToString(CultureInfo.InvariantCulture);
        if (q.Maximum is { } max) schema.Maximum = max.ToString(CultureInfo.InvariantCulture);
        if (q.MaxLength is { } length) schema.MaxLength = length;
        if (q.Default is { } d)
            schema.Default = q.Type switch
            {
                QueryType.Integer => JsonValue.Create(int.Parse(d, CultureInfo.InvariantCulture)),
                QueryType.Boolean => JsonValue.Create(bool.Parse(d)),
                _ => JsonValue.Create(d),
            };
        return schema;
    }

    /// <summary>Produces(200, contentType: "text/csv") without a CLR type: the body is text of that type.</summary>
    private static void ApplyUntypedContent(OpenApiOperation operation, IList<object> metadata)
    {
        foreach (var produces in metadata.OfType<IProducesResponseTypeMetadata>().Where(p => p.Type is null || p.Type == typeof(void)))
        {
            var types = produces.ContentTypes.ToList();
            if (types.Count == 0)
                continue;
            var key = produces.StatusCode.ToString(CultureInfo.InvariantCulture);
            if (!operation.Responses!.TryGetValue(key, out var existing) || existing is not OpenApiResponse response)
                operation.Responses[key] = response = new OpenApiResponse();
            response.Content ??= new Dictionary<string, OpenApiMediaType>();
            foreach (var type in types)
                response.Content.TryAdd(type, new OpenApiMediaType
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.String,
                        Description = type == "application/x-ndjson" ? "One JSON object per line." : null,
                    },
                });
        }
    }

    /// <summary>
    /// Server-Sent Events are text, not a JSON object: the framework would describe the C# SseItem (with a TimeSpan
    /// pattern no client reads). Say what the stream carries instead.
    /// </summary>
    private static void ApplyEventStreams(OpenApiOperation operation)
    {
        foreach (var response in operation.Responses!.Values.OfType<OpenApiResponse>())
            if (response.Content?.ContainsKey("text/event-stream") == true)
                response.Content["text/event-stream"] = new OpenApiMediaType
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.String,
                        Description = "Server-Sent Events: `ready` first, then a `message` event for each committed change of a message " +
                            "(data: JSON `{transition, message}`, the message as GET /api/messages/{id} shows it), and `ping` to keep the connection open.",
                    },
                };
    }

    /// <summary>A file upload (Accepts&lt;IFormFile&gt;): the raw body is text, a form carries it as `file`.</summary>
    private static void ApplyUploads(OpenApiOperation operation)
    {
        if (operation.RequestBody?.Content is not { } content)
            return;
        foreach (var (type, media) in content.ToList())
        {
            if (media.Schema is not OpenApiSchemaReference { Reference.Id: "IFormFile" })
                continue;
            content[type] = new OpenApiMediaType
            {
                Schema = type.StartsWith("multipart/", StringComparison.Ordinal)
                    ? new OpenApiSchema
                    {
                        Type = JsonSchemaType.Object,
                        Required = new HashSet<string> { "file" },
                        Properties = new Dictionary<string, IOpenApiSchema>
                        {
                            ["file"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary", Description = "The CSV file." },
                        },
                    }
                    : new OpenApiSchema { Type = JsonSchemaType.String, Description = "The CSV, with a header row." },
            };
        }
    }
}

/// <summary>
/// Integers as integers, times as date-time strings, enums, formats and descriptions from <see cref="OpenApiSchemas"/>,
/// and `required`: a request body requires what the agent requires and nothing else; a response has every field.
/// </summary>
internal sealed class AgentSchemaTransformer : IOpenApiSchemaTransformer
{
    private HashSet<Type>? _requestTypes;

    public Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken ct)
    {
        var type = context.JsonTypeInfo.Type;
        var underlying = Nullable.GetUnderlyingType(type);
        var requestTypes = _requestTypes ??= RequestTypes(context.ApplicationServices);

        // Web defaults read numbers from strings too; the document promises numbers, which is what the agent writes.
        if (schema.Type is { } t && (t & (JsonSchemaType.Integer | JsonSchemaType.Number)) != 0 && (t & JsonSchemaType.String) != 0)
        {
            schema.Type = t & ~JsonSchemaType.String;
            schema.Pattern = null;
        }
        // The UTC converter hides the type from the schema exporter.
        if ((underlying ?? type) == typeof(DateTimeOffset) || (underlying ?? type) == typeof(DateTime))
        {
            schema.Type = underlying is null ? JsonSchemaType.String : JsonSchemaType.String | JsonSchemaType.Null;
            schema.Format = "date-time";
        }

        if (context.JsonPropertyInfo is { } property && property.AttributeProvider is MemberInfo member)
        {
            var key = (property.DeclaringType, member.Name);
            var inRequest = requestTypes.Contains(property.DeclaringType);
            if (OpenApiSchemas.Enums.TryGetValue(key, out var values))
                ApplyEnum(schema, values, inRequest);
            if (OpenApiSchemas.Formats.TryGetValue(key, out var format))
            {
                schema.Format = format;
                if (inRequest && schema.Type is { } st) schema.Type = st & ~JsonSchemaType.Null;
            }
            if (OpenApiSchemas.Descriptions.TryGetValue(key, out var text))
                schema.Description = text;
        }

        // An object's own schema: also when it is reached as a property's type (a bulk's leadFilter, a message's error).
        if (context.JsonTypeInfo.Kind == JsonTypeInfoKind.Object && schema.Properties is { Count: > 0 })
        {
            NullableObjects.Record(context.JsonTypeInfo);
            var isRequest = requestTypes.Contains(type);
            schema.Required = new HashSet<string>(RequiredProperties(context.JsonTypeInfo, isRequest));
            // A field a request must carry is not null either.
            if (isRequest)
                foreach (var name in schema.Required)
                    if (schema.Properties.TryGetValue(name, out var p) && p is OpenApiSchema { Type: { } pt } required)
                        required.Type = pt & ~JsonSchemaType.Null;
        }
        return Task.CompletedTask;
    }

    private static IEnumerable<string> RequiredProperties(JsonTypeInfo info, bool isRequest)
    {
        var table = isRequest ? OpenApiSchemas.RequiredInRequests : OpenApiSchemas.RequiredInResponses;
        if (!table.TryGetValue(info.Type, out var names))
            return isRequest ? [] : info.Properties.Select(p => p.Name);
        return info.Properties.Where(p => p.AttributeProvider is MemberInfo m && names.Contains(m.Name)).Select(p => p.Name);
    }

    /// <summary>An enum on a string, or on the items of a string array. Optional request fields are left out, not sent as null.</summary>
    private static void ApplyEnum(OpenApiSchema schema, string[] values, bool inRequest)
    {
        var target = schema;
        if (schema.Type is { } t && (t & JsonSchemaType.Array) != 0 && schema.Items is OpenApiSchema items)
            target = items;
        if (inRequest && schema.Type is { } st)
            schema.Type = st & ~JsonSchemaType.Null;
        var nodes = values.Select(v => (JsonNode?)JsonValue.Create(v)).ToList();
        if (target.Type is { } tt && (tt & JsonSchemaType.Null) != 0)
            nodes.Add(null);
        target.Enum = nodes!;
    }

    /// <summary>The request body types of every endpoint, and the types of their properties (a bulk's leadFilter).</summary>
    private static HashSet<Type> RequestTypes(IServiceProvider services)
    {
        var found = new HashSet<Type>();
        var descriptions = services.GetRequiredService<IApiDescriptionGroupCollectionProvider>().ApiDescriptionGroups.Items
            .SelectMany(g => g.Items);
        foreach (var parameter in descriptions.SelectMany(d => d.ParameterDescriptions).Where(p => p.Source == BindingSource.Body))
            Walk(parameter.Type, found);
        return found;

        static void Walk(Type type, HashSet<Type> found)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (type.IsArray)
            {
                Walk(type.GetElementType()!, found);
                return;
            }
            if (type.IsGenericType)
            {
                foreach (var argument in type.GetGenericArguments())
                    Walk(argument, found);
                return;
            }
            if (type.Assembly != typeof(AgentSchemaTransformer).Assembly || !found.Add(type))
                return;
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
                Walk(property.PropertyType, found);
        }
    }
}

/// <summary>
/// Object-typed properties that may be null (a message's <c>error</c>, <c>recipientWindow</c>). The schema exporter
/// writes them as plain objects or a bare $ref, which says null is not allowed, so a validating client refuses
/// every answer where they are null. Recorded per declaring schema while schemas are made, applied to the finished document.
/// </summary>
internal static class NullableObjects
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, HashSet<string>> Found = new();
    private static readonly NullabilityInfoContext Nullability = new();

    public static void Record(JsonTypeInfo info)
    {
        var names = new HashSet<string>();
        foreach (var property in info.Properties)
        {
            var type = property.PropertyType;
            if (type.IsValueType ? Nullable.GetUnderlyingType(type) is not { } inner || inner.IsPrimitive || inner.IsEnum
                    || inner == typeof(DateTimeOffset) || inner == typeof(DateTime) || inner == typeof(decimal) || inner == typeof(TimeSpan) || inner == typeof(Guid)
                : type == typeof(string) || type.IsArray || typeof(System.Collections.IEnumerable).IsAssignableFrom(type))
                continue;
            var nullable = property.AttributeProvider switch
            {
                PropertyInfo p => type.IsValueType || IsNullable(() => Nullability.Create(p)),
                FieldInfo f => type.IsValueType || IsNullable(() => Nullability.Create(f)),
                _ => false,
            };
            if (nullable)
                names.Add(property.Name);
        }
        if (names.Count > 0)
            Found[OpenApiOptions.CreateDefaultSchemaReferenceId(info) ?? info.Type.Name] = names;
    }

    private static bool IsNullable(Func<NullabilityInfo> read)
    {
        lock (Nullability)
            return read().ReadState == NullabilityState.Nullable;
    }

    public static void Apply(OpenApiDocument document)
    {
        if (document.Components?.Schemas is not { } schemas)
            return;
        foreach (var (id, names) in Found)
        {
            if (!schemas.TryGetValue(id, out var component) || component is not OpenApiSchema { Properties: { } properties })
                continue;
            foreach (var name in names)
            {
                if (!properties.TryGetValue(name, out var property))
                    continue;
                if (property is OpenApiSchemaReference reference)
                    properties[name] = new OpenApiSchema
                    {
                        OneOf = [new OpenApiSchema { Type = JsonSchemaType.Null }, reference],
                        Description = reference.Description,
                    };
                else if (property is OpenApiSchema { Type: { } t } inline && (t & JsonSchemaType.Object) != 0)
                    inline.Type = t | JsonSchemaType.Null;
            }
        }
    }
}
