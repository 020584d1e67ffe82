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
    /// for once, not once per type.
    /// </summary>
    public async Task<IReadOnlySet<string>> UsableTypesAsync(LineOptions line, IEnumerable<string> types, CancellationToken ct)
    {
        var asked = types.Distinct().Select(type => (Type: type, Channel: Resolve(line, type)))
            .Where(x => x.Channel is not UnavailableChannel)
            .Select(async x => (x.Type, Problem: await x.Channel.LastingProblemAsync(line, x.Type, ct)))
            .ToList();
        var answers = await Task.WhenAll(asked);
        return answers.Where(a => a.Problem is null).Select(a => a.Type).ToHashSet();
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
