using LineAgent.Scheduling;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Scheduling;

/// <summary>
/// <see cref="Wakeup.SleepAsync"/> against a fake clock that something moves while the sleeper arms its timer: the
/// window in which a test that saw <see cref="Wakeup.SleepingUntil"/> moved the clock there before the timer existed,
/// which armed it for the whole wait again from the new time and left the dispatcher asleep (PreviewTests, CI stop 30).
/// </summary>
public sealed class WakeupTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A fake clock that runs <see cref="Arming"/> each time a timer is created, before it exists.</summary>
    private sealed class ArmingClock(FakeTimeProvider fake) : TimeProvider
    {
        public Action? Arming { get; set; }

        public int Timers { get; private set; }

        public override DateTimeOffset GetUtcNow() => fake.GetUtcNow();

        public override long GetTimestamp() => fake.GetTimestamp();

        public override long TimestampFrequency => fake.TimestampFrequency;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Timers++;
            Arming?.Invoke();
            return fake.CreateTimer(callback, state, dueTime, period);
        }
    }

    [Test]
    public async Task SleepingUntil_ShouldBeSeenOnlyOnceTheTimerIsArmed()
    {
        var fake = new FakeTimeProvider(T0);
        var clock = new ArmingClock(fake);
        var wakeup = new Wakeup(clock);
        var seenWhileArming = new List<DateTimeOffset?>();
        clock.Arming = () =>
        {
            // What a test stepping the clock does: it sees the sleeper's time and moves the clock there.
            var until = wakeup.SleepingUntil;
            seenWhileArming.Add(until);
            if (until is { } u)
                fake.SetUtcNow(u);
        };

        var sleep = wakeup.SleepAsync(T0.AddSeconds(10), CancellationToken.None);
        var until = await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the sleeper to say until when");
        fake.SetUtcNow(until);

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the sleep to end at the time it gave");
        Assert.That(until, Is.EqualTo(T0.AddSeconds(10)));
        Assert.That(seenWhileArming, Is.All.Null, "nobody can see the sleeper's time before its timer exists");
    }

    [Test]
    public async Task Sleep_WhenTheClockMovesWhileItArms_ShouldStillEndAtItsTime()
    {
        var fake = new FakeTimeProvider(T0);
        var clock = new ArmingClock(fake);
        var wakeup = new Wakeup(clock);
        var moved = false;
        clock.Arming = () =>
        {
            if (moved)
                return;
            moved = true;
            fake.Advance(TimeSpan.FromSeconds(3));
        };

        var sleep = wakeup.SleepAsync(T0.AddSeconds(10), CancellationToken.None);
        await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the sleeper to arm its timer");
        Assert.That(sleep.IsCompleted, Is.False, "7 s of the 10 are still to go");
        fake.SetUtcNow(T0.AddSeconds(10));

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the sleep to end at 10 s, not 3 s later");
        Assert.That(clock.Timers, Is.EqualTo(2), "armed again after the clock moved");
    }

    /// <summary>Found by review: a fake clock moved by 1 ms or less while arming left the timer due that much after `until`.</summary>
    [TestCase(1)]
    [TestCase(1_000)]
    [TestCase(10_000)]
    public async Task Sleep_WhenAFakeClockMovesALittleWhileItArms_ShouldStillEndAtItsTime(long microseconds)
    {
        var fake = new FakeTimeProvider(T0);
        var clock = new ArmingClock(fake);
        var wakeup = new Wakeup(clock);
        var moved = false;
        clock.Arming = () =>
        {
            if (!moved)
            {
                moved = true;
                fake.Advance(TimeSpan.FromMicroseconds(microseconds));
            }
        };

        var sleep = wakeup.SleepAsync(T0.AddSeconds(10), CancellationToken.None);
        var until = await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the sleeper to arm its timer");
        fake.SetUtcNow(until);

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the sleep to end at the time it published");
    }

    /// <summary>
    /// Found by review: Task.Delay refuses more than about 49.7 days, so a worker asking for 60 days (a backup every 60
    /// days) threw out of its loop. Now its timer is capped and it still ends at its time.
    /// </summary>
    [Test]
    public async Task Sleep_OfSixtyDays_ShouldNotThrow_AndShouldEndAtItsTime()
    {
        var fake = new FakeTimeProvider(T0);
        var wakeup = new Wakeup(fake);

        var sleep = wakeup.SleepAsync(T0.AddDays(60), CancellationToken.None);
        Assert.That(await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the sleep to start"), Is.EqualTo(T0.AddDays(60)));
        Assert.That(sleep.IsFaulted, Is.False, sleep.Exception?.ToString());
        fake.SetUtcNow(T0.AddDays(60));

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the sleep to end");
        Assert.That(sleep.IsCompletedSuccessfully, Is.True, sleep.Exception?.ToString());
    }

    /// <summary>Review: a clock that moves on every read (FakeTimeProvider.AutoAdvanceAmount) must not keep the sleeper arming forever.</summary>
    [Test]
    public async Task Sleep_OnAClockThatMovesOnEveryRead_ShouldArmAFewTimes_ThenSleep()
    {
        var fake = new FakeTimeProvider(T0) { AutoAdvanceAmount = TimeSpan.FromMilliseconds(1) };
        var clock = new ArmingClock(fake);
        var wakeup = new Wakeup(clock);

        var sleep = wakeup.SleepAsync(T0.AddSeconds(10), CancellationToken.None);
        await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the sleeper to give up re-arming and sleep");
        Assert.That(clock.Timers, Is.EqualTo(4));
        fake.AutoAdvanceAmount = TimeSpan.Zero;
        fake.SetUtcNow(T0.AddSeconds(11));

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the sleep to end");
    }

    [Test]
    public async Task Sleep_WhenWokenWhileItArms_ShouldReturnWithoutTheClockMoving()
    {
        var fake = new FakeTimeProvider(T0);
        var clock = new ArmingClock(fake);
        var wakeup = new Wakeup(clock);
        clock.Arming = wakeup.Wake;

        var sleep = wakeup.SleepAsync(T0.AddMinutes(5), CancellationToken.None);

        await Eventually.TrueAsync(() => sleep.IsCompleted, "the wake to end the sleep");
        Assert.That(fake.GetUtcNow(), Is.EqualTo(T0));
        Assert.That(wakeup.SleepingUntil, Is.Null);
    }

    [Test]
    public async Task Sleep_WithAWakeBeforeIt_ShouldReturnAtOnce_AndTheNextShouldSleep()
    {
        var fake = new FakeTimeProvider(T0);
        var wakeup = new Wakeup(fake);
        wakeup.Wake();

        await wakeup.SleepAsync(T0.AddMinutes(5), CancellationToken.None);
        var next = wakeup.SleepAsync(T0.AddMinutes(5), CancellationToken.None);
        await Eventually.ValueAsync(() => wakeup.SleepingUntil, "the next sleep to start");
        Assert.That(next.IsCompleted, Is.False, "one wake ends one sleep");

        fake.Advance(TimeSpan.FromMinutes(5));
        await Eventually.TrueAsync(() => next.IsCompleted, "the next sleep to end at its time");
    }
}
