-- restart-messages.applescript: quit Messages and open it again (after -1712 or a timeout: Messages is wedged).
on run argv
	tell application "Messages" to quit
	repeat 20 times
		if application "Messages" is not running then exit repeat
		delay 0.25
	end repeat
	tell application "Messages" to launch
	delay 2
	return
end run
