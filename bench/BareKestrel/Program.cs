// The "bare stack" baseline for bench/LineAgent.Bench: the same JSON body as the agent's POST /api/messages,
// deserialized into an equivalent record with System.Text.Json, answered 201 with a small JSON. No storage,
// no validation, no auth: what Kestrel + minimal APIs cost on this machine. `dotnet BareKestrel.dll --urls URL`.
using System.Text.Json;

var builder = WebApplication.CreateBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information); // "Now listening on: ..." tells the bench the port
builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.CamelCase);

var app = builder.Build();
app.MapGet("/healthz", () => Results.Text("ok"));
app.MapPost("/api/messages", (SendMessageRequest body) =>
{
    var id = "msg_" + Guid.CreateVersion7().ToString("N");
    return Results.Created($"/api/messages/{id}", new Created(id, body.ScheduledAt is null ? "sent" : "scheduled", body.ScheduledAt));
});
app.Run();

/// <summary>The fields of the agent's SendMessageRequest.</summary>
internal sealed record SendMessageRequest
{
    public string? Content { get; init; }
    public string? Type { get; init; }
    public string? LineId { get; init; }
    public string? RecipientPhone { get; init; }
    public string? RecipientEmail { get; init; }
    public string? RecipientName { get; init; }
    public string? ScheduledAt { get; init; }
    public string? TimeZone { get; init; }
    public string? LeadId { get; init; }
    public string? BatchId { get; init; }
    public string? Subject { get; init; }
}

internal sealed record Created(string Id, string Status, string? ScheduledAt);
