namespace LineAgent.Channels.Twilio;

/// <summary>`Twilio:*`: the account used by lines whose `Sms:Via` is `twilio`.</summary>
public sealed class TwilioOptions
{
    public const string Section = "Twilio";
    public const string DefaultBaseUrl = "https://api.twilio.com";

    public string? AccountSid { get; set; }
    public string? AuthToken { get; set; }

    /// <summary>Where the REST API is; the SDK has none of its own, so requests are redirected here.</summary>
    public string BaseUrl { get; set; } = DefaultBaseUrl;

    /// <summary>HTTP timeout of one request.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often messages still `sending` (or sent but not yet final) are looked up.</summary>
    public TimeSpan StatusPollInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often the Messages list is read for replies to a Twilio line's number (stopOnReply, STOP).</summary>
    public TimeSpan InboundPollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a message Twilio took may stay `sending` without a final status it can read (the SID answers 404, the
    /// login is refused, an unknown status) before it fails `unconfirmed`: above Twilio's longest queue (ValidityPeriod).
    /// </summary>
    public TimeSpan ConfirmTimeout { get; set; } = TimeSpan.FromHours(24);

    public bool IsConfigured => !string.IsNullOrWhiteSpace(AccountSid) && !string.IsNullOrWhiteSpace(AuthToken);
}
