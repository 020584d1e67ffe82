-- restart-messages.applescript: restart a hung Messages and wait until it is signed in again.
-- A hung app does not answer Apple events, so `quit` would hang as well: kill it by process id.
-- Prints the iMessage account's connection status at the end (connected, connecting, disconnected).
on run argv
	set pids to do shell script "/usr/bin/pgrep -x Messages || true"
	if pids is not "" then
		set AppleScript's text item delimiters to linefeed
		set pidList to text items of pids
		set AppleScript's text item delimiters to " "
		do shell script "/bin/kill -9 " & (pidList as text) & " || true"
		set AppleScript's text item delimiters to ""
		repeat 40 times
			if application "Messages" is not running then exit repeat
			delay 0.25
		end repeat
	end if
	do shell script "/usr/bin/open -g -a Messages"

	-- Wait for the account instead of a fixed delay: a cold start after login can take a while.
	set lastStatus to "disconnected"
	set deadline to (current date) + 60
	repeat while (current date) < deadline
		try
			with timeout of 5 seconds
				tell application "Messages" to set lastStatus to (connection status of (1st account whose service type = iMessage)) as text
			end timeout
			if lastStatus is "connected" then exit repeat
		end try
		delay 0.5
	end repeat
	return lastStatus
end run
