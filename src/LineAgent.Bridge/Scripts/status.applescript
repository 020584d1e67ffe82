-- status.applescript: one line per Messages account on stdout:
-- <service type>\t<account id>\t<enabled true|false>\t<connection status>
on run argv
	set report to {}
	tell application "Messages"
		repeat with anAccount in accounts
			set end of report to ((service type of anAccount) as text) & tab & (id of anAccount) & tab & ((enabled of anAccount) as text) & tab & ((connection status of anAccount) as text)
		end repeat
	end tell
	set AppleScript's text item delimiters to linefeed
	return report as text
end run
