using System.Runtime.InteropServices;
using LineAgent.Hosting;

namespace LineAgent.Tests.Hosting;

public sealed class ProcessMemoryTests
{
    [Test]
    public void LimitMallocArenas_ShouldTakeEffectWithGlibc_AndBeSkippedElsewhere()
    {
        if (OperatingSystem.IsLinux() && RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.Ordinal))
            Assert.Ignore("musl's malloc has no arenas to cap");
        // glibc's mallopt answers 1 when it accepts M_ARENA_MAX; on macOS and Windows the call is not made.
        Assert.That(ProcessMemory.LimitMallocArenas(), Is.EqualTo(OperatingSystem.IsLinux()));
    }
}
