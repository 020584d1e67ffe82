using LineAgent.Batches;
using LineAgent.Messages;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LineAgent.Leads;

public static class LeadServices
{
    /// <summary>Leads (store, lookup, CSV import) and the bulk send that renders a template for each.</summary>
    public static IServiceCollection AddLeads(this IServiceCollection services)
    {
        services.TryAddSingleton<LeadStore>();
        services.TryAddSingleton<ILeadLookup>(sp => sp.GetRequiredService<LeadStore>());
        services.TryAddSingleton<LeadImport>();
        services.TryAddSingleton<BulkSend>();
        services.TryAddSingleton<BatchQuery>();
        return services;
    }
}
