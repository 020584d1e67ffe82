using LineAgent.Hosting;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

/// <summary>Hourly housekeeping: forgets idempotency keys past their lifetime.</summary>
public sealed class Maintenance(IdempotencyStore keys, IOptions<SchedulingOptions> options, TimeProvider time, ILogger<Maintenance> log)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var cutoff = time.GetUtcNow() - options.Value.IdempotencyKeyLifetime;
                var removed = await keys.PruneAsync(Time.ToMs(cutoff), stoppingToken);
                if (removed > 0)
                    log.LogInformation("Maintenance: forgot {Count} idempotency keys older than {Cutoff:O}", removed, cutoff);
                await Task.Delay(TimeSpan.FromHours(1), time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                log.LogError(e, "Maintenance failed");
                try { await Task.Delay(TimeSpan.FromMinutes(5), time, stoppingToken); } catch (OperationCanceledException) { break; }
            }
        }
    }
}
