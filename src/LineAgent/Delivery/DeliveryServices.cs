using LineAgent.Availability;
using LineAgent.Channels;
using LineAgent.Suppressions;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LineAgent.Delivery;

public static class DeliveryServices
{
    /// <summary>What happens after the hand-off: the delivery watcher (chat.db receipts), replies, opt-outs, and the availability they teach.</summary>
    public static IServiceCollection AddDelivery(this IServiceCollection services)
    {
        services.TryAddSingleton<SuppressionList>();
        services.TryAddSingleton<AvailabilityService>();
        services.TryAddSingleton<ITypeRouter, AvailabilityTypeRouter>();
        services.TryAddSingleton<ReplyIntake>();
        services.TryAddSingleton<DeliveryWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<DeliveryWatcher>());
        return services;
    }
}
