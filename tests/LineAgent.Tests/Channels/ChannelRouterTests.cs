using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Channels;

/// <summary>What `auto` may pick from: the types whose channel knows no lasting problem, asked together.</summary>
public sealed class ChannelRouterTests
{
    /// <summary>Carries the given types; its lasting problem is a task the test completes.</summary>
    private sealed class SlowHealthChannel(string name, params string[] types) : IMessageChannel
    {
        public readonly TaskCompletionSource<string?> Answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly List<string> Asked = [];

        public string Name => name;
        public bool Handles(LineOptions line, string type) => types.Contains(type);

        public Task<string?> LastingProblemAsync(LineOptions line, string type, CancellationToken ct)
        {
            lock (Asked)
                Asked.Add(type);
            return Answer.Task;
        }

        public Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct) => throw new NotSupportedException();
    }

    /// <summary>A channel whose check throws before it returns a task (not an async method).</summary>
    private sealed class ThrowingHealthChannel(string name, string type) : IMessageChannel
    {
        public string Name => name;
        public bool Handles(LineOptions line, string t) => t == type;
        public Task<string?> LastingProblemAsync(LineOptions line, string t, CancellationToken ct) => throw new InvalidOperationException("the check broke");
        public Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string t, CancellationToken ct) => throw new NotSupportedException();
    }

    private static ChannelRouter Router(TempDir dir, params IMessageChannel[] channels)
    {
        var options = Options.Create(new AgentOptions { DryRun = false });
        return new ChannelRouter(channels, new DryRunOutboxChannel(new DataDirectory(dir.Path), options, TimeProvider.System), options);
    }

    /// <summary>
    /// iMessage and SMS both go through Messages, whose health check may hang for up to 30 s (each ask waits up to 2 s):
    /// both are asked before either answers, so a request waits once. Asked one after the other, it waited twice (4.5 s).
    /// </summary>
    [Test]
    public async Task UsableTypes_ShouldAskEveryTypeBeforeAnyAnswers()
    {
        using var dir = new TempDir();
        var messages = new SlowHealthChannel("messages", MessageType.IMessage, MessageType.Sms);
        var router = Router(dir, messages);

        var usable = router.UsableTypesAsync(new LineOptions { Id = "default" }, [MessageType.IMessage, MessageType.Sms], CancellationToken.None);

        Assert.That(messages.Asked, Is.EquivalentTo(new[] { MessageType.IMessage, MessageType.Sms }), "both asked while neither has answered");
        Assert.That(usable.IsCompleted, Is.False);
        messages.Answer.SetResult(null);
        Assert.That(await usable, Is.EquivalentTo(new[] { MessageType.IMessage, MessageType.Sms }));
    }

    [Test]
    public async Task UsableTypes_ShouldLeaveOut_ATypeWithALastingProblem_AndOneNoChannelCarries()
    {
        using var dir = new TempDir();
        var messages = new SlowHealthChannel("messages", MessageType.IMessage);
        messages.Answer.SetResult("No signed-in iMessage account in Messages (signed out).");
        var email = new SlowHealthChannel("smtp", MessageType.Email);
        email.Answer.SetResult(null);
        var router = Router(dir, messages, email);

        var usable = await router.UsableTypesAsync(new LineOptions { Id = "default" }, MessageType.Concrete, CancellationToken.None);

        Assert.That(usable, Is.EquivalentTo(new[] { MessageType.Email }), "iMessage has a lasting problem; nothing carries SMS");
        Assert.That(messages.Asked.Concat(email.Asked), Is.EquivalentTo(new[] { MessageType.IMessage, MessageType.Email }), "SMS has no channel to ask");
    }

    /// <summary>
    /// A check that throws instead of returning a faulted task does not stop the others being asked (their tasks would be
    /// left unobserved), and the caller sees the exception when it awaits, as from the async method this was (a review).
    /// </summary>
    [Test]
    public async Task UsableTypes_WhenOneCheckThrows_ShouldStillAskTheOthers_AndFailTheTask()
    {
        using var dir = new TempDir();
        var email = new SlowHealthChannel("smtp", MessageType.Email);
        var router = Router(dir, new ThrowingHealthChannel("messages", MessageType.IMessage), email);

        Task<IReadOnlySet<string>>? usable = null;
        Assert.DoesNotThrow(() => usable = router.UsableTypesAsync(new LineOptions { Id = "default" }, [MessageType.IMessage, MessageType.Email], CancellationToken.None));

        Assert.That(email.Asked, Is.EqualTo(new[] { MessageType.Email }), "asked although the iMessage check threw");
        email.Answer.SetResult(null);
        Assert.That(async () => await usable!, Throws.InvalidOperationException.With.Message.EqualTo("the check broke"));
    }
}
