-- status.applescript: one line per Messages account on stdout:
-- <service type>\t<account id>\t<enabled true|false>\t<connection status>
-- or the single line `not_running` when Messages is not running: a health check must not launch it
-- (`tell application "Messages"` would), since the user may have quit it on purpose.
on run argv
	if application "Messages" is not running then return "not_running"
	set report to {}
	with timeout of 20 seconds
		tell application "Messages"
			repeat with anAccount in accounts
				set end of report to ((service type of anAccount) as text) & tab & (id of anAccount) & tab & ((enabled of anAccount) as text) & tab & ((connection status of anAccount) as text)
			end repeat
		end tell
	end timeout
	set AppleScript's text item delimiters to linefeed
	return report as text
end run
