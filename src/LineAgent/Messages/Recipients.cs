using MimeKit;
using PhoneNumbers;

namespace LineAgent.Messages;

/// <summary>Phone numbers (libphonenumber, stored as E.164) and email addresses (MimeKit).</summary>
public static class Recipients
{
    private static readonly PhoneNumberUtil Phones = PhoneNumberUtil.GetInstance();

    /// <summary>
    /// Numbers read before, as typed with their region: libphonenumber's parse and check were 2.3 % of the agent's CPU under
    /// the bench's POST load (its regular expressions), and a line writes to the same people again. Only numbers it took;
    /// at <see cref="RememberedNumbers"/> the memory starts again (about 0.5 MB at most).
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Text, string Region), string> Read = new();

    public const int RememberedNumbers = 4096;

    /// <summary>E.164 for a valid number; national forms are read in <paramref name="defaultRegion"/>.</summary>
    public static bool TryNormalizePhone(string input, string defaultRegion, out string e164, out string problem)
    {
        e164 = "";
        problem = "";
        var text = input.Trim();
        if (text.Length == 0 || text.Length > 40 || text.Any(char.IsControl))
        {
            problem = "is not a phone number";
            return false;
        }
        if (Read.TryGetValue((text, defaultRegion), out var known))
        {
            e164 = known;
            return true;
        }
        try
        {
            var number = Phones.Parse(text, defaultRegion);
            if (!Phones.IsValidNumber(number))
            {
                problem = $"'{input}' is not a valid phone number" + (text.StartsWith('+') ? "" : $" in region {defaultRegion}; use E.164 such as +12025551234");
                return false;
            }
            // E.164 has no extension, and a text cannot reach one: dropped, the message went to the main number (probe I).
            if (number.HasExtension && number.Extension.Length > 0)
            {
                problem = $"'{input}' has an extension ({number.Extension}): a text message cannot reach an extension; give the number without it";
                return false;
            }
            e164 = Phones.Format(number, PhoneNumberFormat.E164);
            if (Read.Count >= RememberedNumbers)
                Read.Clear();
            Read[(text, defaultRegion)] = e164;
            return true;
        }
        catch (NumberParseException ex)
        {
            problem = $"'{input}' is not a phone number ({ex.ErrorType switch
            {
                ErrorType.INVALID_COUNTRY_CODE => "unknown country code",
                ErrorType.TOO_SHORT_NSN or ErrorType.TOO_SHORT_AFTER_IDD => "too short",
                ErrorType.TOO_LONG => "too long",
                _ => "not a number",
            }})";
            return false;
        }
    }

    /// <summary>
    /// A single bare address such as ana@example.com, lower-cased whole: Messages stores handles that way
    /// and opt-outs, availability and replies must match however the caller spelled it.
    /// </summary>
    public static bool TryNormalizeEmail(string input, out string address, out string problem)
    {
        address = "";
        problem = "";
        var text = input.Trim();
        if (text.Length is 0 or > 254 || text.Contains(',') || text.Contains(';') || text.Any(char.IsControl)
            || !MailboxAddress.TryParse(ParserOptions.Default, text, out var mailbox)
            || !string.IsNullOrEmpty(mailbox.Name) || mailbox.Address != text)
        {
            problem = $"'{input}' is not an email address";
            return false;
        }
        var at = mailbox.Address.LastIndexOf('@');
        if (at <= 0 || at == mailbox.Address.Length - 1 || !mailbox.Address[(at + 1)..].Contains('.'))
        {
            problem = $"'{input}' is not an email address (it needs a user and a domain such as example.com)";
            return false;
        }
        // What a mail server refuses anyway (RFC 5321 and the DNS): a user part over 64 characters, an address literal
        // such as [127.0.0.1], a domain label that is empty, over 63 characters, or begins or ends with a hyphen.
        var domain = mailbox.Address[(at + 1)..];
        if (at > 64)
        {
            problem = $"'{input}' is not an email address (the part before @ has {at} characters; at most 64)";
            return false;
        }
        if (domain.StartsWith('[') || domain.Split('.') is var labels && labels.Any(l => l.Length is 0 or > 63 || l.StartsWith('-') || l.EndsWith('-'))
            || labels[^1].All(char.IsAsciiDigit))
        {
            problem = $"'{input}' is not an email address (its domain '{domain}' is not a valid host name)";
            return false;
        }
        address = mailbox.Address.ToLowerInvariant();
        return true;
    }

    public static bool LooksLikeEmail(string s) => s.Contains('@');
}
