using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using Microsoft.Extensions.Options;

namespace LineAgent.Channels;

/// <summary>Picks the channel that carries a message type on a line; dry-run takes everything.</summary>
public sealed class ChannelRouter(IEnumerable<IMessageChannel> channels, DryRunOutboxChannel dryRun, IOptions<AgentOptions> options)
{
    private readonly IReadOnlyList<IMessageChannel> _channels = channels.ToList();

    /// <summary>The most sends any channel here takes at once (<see cref="ChannelCapabilities.ParallelSends"/>): how far ahead a line's worker looks.</summary>
    public int MostParallelSends => options.Value.DryRun
        ? dryRun.Capabilities.ParallelSends
        : _channels.Where(c => !c.Capabilities.IsDryRun).Select(c => c.Capabilities.ParallelSends).DefaultIfEmpty(1).Max();

    public IMessageChannel Resolve(LineOptions line, string type)
    {
        if (options.Value.DryRun)
            return dryRun;
        return _channels.FirstOrDefault(c => !c.Capabilities.IsDryRun && c.Handles(line, type))
            ?? new UnavailableChannel(type, UnavailableReason(line, type));
    }

    /// <summary>
    /// Which of <paramref name="types"/> <paramref name="line"/> can send now: a channel carries them and knows no lasting
    /// problem with them (<see cref="IMessageChannel.LastingProblemAsync"/>: iMessage signed out, no Full Disk Access). What
    /// `auto` picks from. The channels are asked together, so a slow answer (a health check of a hung Messages) is waited
    /// for once, not once per type. An answer a channel already has (most have no lasting problem to look for) is taken as
    /// it is: `auto` asks this for every send, and the async lambdas and Task.WhenAll were about 1 % of the agent's CPU
    /// under the POST load (perf).
    /// </summary>
    public Task<IReadOnlySet<string>> UsableTypesAsync(LineOptions line, IEnumerable<string> types, CancellationToken ct)
    {
        var usable = new HashSet<string>();
        List<(string Type, Task<string?> Problem)>? waiting = null;
        foreach (var type in types.Distinct())
        {
            var channel = Resolve(line, type);
            if (channel is UnavailableChannel)
                continue;
            Task<string?> problem;
            try
            {
                problem = channel.LastingProblemAsync(line, type, ct);
            }
            catch (Exception e)
            {
                // As from an async method: the others are still asked, and the caller sees it when it awaits.
                problem = Task.FromException<string?>(e);
            }
            if (!problem.IsCompletedSuccessfully)
                (waiting ??= []).Add((type, problem));
            else if (problem.Result is null)
                usable.Add(type);
        }
        return waiting is null ? Task.FromResult<IReadOnlySet<string>>(usable) : WaitForTheRestAsync(usable, waiting);
    }

    private static async Task<IReadOnlySet<string>> WaitForTheRestAsync(HashSet<string> usable, List<(string Type, Task<string?> Problem)> waiting)
    {
        await Task.WhenAll(waiting.Select(w => w.Problem));
        foreach (var (type, problem) in waiting)
            if (problem.Result is null)
                usable.Add(type);
        return usable;
    }

    /// <summary>The channel that recorded <paramref name="channelName"/> on a row, for reconciling it.</summary>
    public IMessageChannel? ByName(string? channelName) =>
        channelName == DryRunOutboxChannel.ChannelName ? dryRun : _channels.FirstOrDefault(c => c.Name == channelName);

    private static string UnavailableReason(LineOptions line, string type) => type switch
    {
        MessageType.IMessage when !line.IMessage.Enabled => $"iMessage is disabled on line '{line.Id}'.",
        MessageType.IMessage or MessageType.Sms when !OperatingSystem.IsMacOS() =>
            $"{(type == MessageType.IMessage ? "iMessage" : "SMS")} needs Messages.app on macOS; this machine has none. " +
            "Set Bridge:OsascriptPath to a Messages stand-in, or run with --dry-run.",
        MessageType.Sms when line.Sms.Via == SmsLineOptions.ViaTwilio => $"Twilio is not configured for line '{line.Id}' (Twilio:AccountSid, Twilio:AuthToken, Sms:From).",
        MessageType.Sms => $"SMS through Messages is not available on line '{line.Id}'.",
        MessageType.IMessage => $"iMessage through Messages is not available on line '{line.Id}'.",
        MessageType.Email => $"Email is not configured for line '{line.Id}' (Email:Smtp:Host and the line's Email:From).",
        _ => $"No channel carries '{type}' on line '{line.Id}'.",
    };
}
