using LineAgent.Hosting;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

/// <summary>Hourly housekeeping: forgets idempotency keys past their lifetime and webhook deliveries past Webhooks:KeepDeliveriesFor.</summary>
public sealed class Maintenance(IdempotencyStore keys, Webhooks.WebhookOutbox webhooks, IOptions<SchedulingOptions> options,
    IOptions<Webhooks.WebhookOptions> webhookOptions, TimeProvider time, ILogger<Maintenance> log)
    : WorkerLoop(time, log)
{
    protected override TimeSpan RetryAfterError => TimeSpan.FromMinutes(5);

    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        var cutoff = Clock.GetUtcNow() - options.Value.IdempotencyKeyLifetime;
        var removed = await keys.PruneAsync(Time.ToMs(cutoff), ct);
        if (removed > 0)
            log.LogInformation("Maintenance: forgot {Count} idempotency keys older than {Cutoff:O}", removed, cutoff);
        var before = Clock.GetUtcNow() - webhookOptions.Value.KeepDeliveriesFor;
        var deliveries = await webhooks.PruneAsync(before, ct);
        if (deliveries > 0)
            log.LogInformation("Maintenance: deleted {Count} webhook deliveries settled before {Cutoff:O}", deliveries, before);
        return Clock.GetUtcNow() + TimeSpan.FromHours(1);
    }
}
