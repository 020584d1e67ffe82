using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace LineAgent.Channels.Email;

public enum SmtpSecurity { None, StartTls, SslOnConnect, Auto }

/// <summary>`Email:Smtp:*`: the SMTP server every line's email goes through.</summary>
public sealed class EmailOptions
{
    public const string Section = "Email";

    [ValidateObjectMembers]
    public SmtpOptions Smtp { get; set; } = new();

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Smtp.Host);
}

public sealed class SmtpOptions
{
    public string? Host { get; set; }

    [Range(0, 65535)]
    public int Port { get; set; } = 587;

    public SmtpSecurity Security { get; set; } = SmtpSecurity.Auto;
    public string? User { get; set; }
    public string? Password { get; set; }

    /// <summary>Per SMTP command (connect, each reply).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A connection idle this long is closed; a burst of sends reuses one connection.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The [Range] checks above, generated at build time (no reflection over DataAnnotations at start).</summary>
[OptionsValidator]
public sealed partial class EmailOptionsValidator : IValidateOptions<EmailOptions>;
