using LineAgent.Channels;
using LineAgent.Lines;
using LineAgent.Messages;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using LineAgent.Tests.Support;
using Polly;

namespace LineAgent.Tests.Channels;

/// <summary>
/// A send that waits for another line's send on the same channel (one Messages.app) inside the attempt's timeout:
/// when the timeout comes first, nothing was handed over, and the pipeline must say so (Deferred), not time out.
/// </summary>
public sealed class ChannelGateTests
{
    /// <summary>Takes one send at a time through <see cref="ChannelGate"/>, like MessagesChannel; counts what it started.</summary>
    private sealed class OneAtATimeChannel : IMessageChannel
    {
        public readonly SemaphoreSlim Gate = new(1, 1);
        public int Started;
        public string Name => "one-at-a-time";
        public TimeSpan? LongestAttempt => TimeSpan.FromMinutes(7);
        public ChannelCapabilities Capabilities { get; } = new(ConfirmsLater: true);
        public bool Handles(LineOptions line, string type) => true;

        public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
        {
            if (!await ChannelGate.EnterAsync(Gate, ct))
                return new SendOutcome.Deferred("busy with another line's send", ChannelGate.RetryAfter);
            try
            {
                Interlocked.Increment(ref Started);
                return new SendOutcome.Accepted(null);
            }
            finally
            {
                Gate.Release();
            }
        }

        public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct) => throw new NotSupportedException();
    }

    private static ValueTask<SendOutcome> SendThroughThePipeline(ResiliencePipeline<SendOutcome> pipeline, OneAtATimeChannel channel) =>
        pipeline.ExecuteAsync(static async (s, ct) => await s.SendAsync(null!, ct), channel, CancellationToken.None);

    [Test]
    public async Task AnAttemptThatTimesOutWhileWaiting_ShouldBeDeferred_AndNothingStarted()
    {
        var time = new FakeTimeProvider(AgentFactory.Epoch);
        var channel = new OneAtATimeChannel();
        var pipeline = new ChannelResilience(Options.Create(new ResilienceOptions()), time, NullLogger<ChannelResilience>.Instance).For(channel);

        await channel.Gate.WaitAsync(); // another line's send holds Messages (hung)
        var waiting = SendThroughThePipeline(pipeline, channel).AsTask();
        // The pipeline ran synchronously up to the wait: its timeout timer is set on the fake clock.
        Assert.That(waiting.IsCompleted, Is.False, "the send waits for the gate");
        time.Advance(TimeSpan.FromMinutes(8)); // past the attempt's timeout (LongestAttempt 7 min)

        var outcome = await waiting;
        Assert.That(outcome, Is.TypeOf<SendOutcome.Deferred>(), "not a TimeoutRejectedException: nothing was handed over");
        Assert.That(channel.Started, Is.Zero);
    }

    [Test]
    public async Task AFreeGate_ShouldLetTheSendStart()
    {
        var channel = new OneAtATimeChannel();
        var pipeline = new ChannelResilience(Options.Create(new ResilienceOptions()), new FakeTimeProvider(AgentFactory.Epoch),
            NullLogger<ChannelResilience>.Instance).For(channel);
        Assert.That(await SendThroughThePipeline(pipeline, channel), Is.TypeOf<SendOutcome.Accepted>());
        Assert.That((channel.Started, channel.Gate.CurrentCount), Is.EqualTo((1, 1)));
    }
}
