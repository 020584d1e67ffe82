-- send.applescript <serviceType> <recipient> <text>
-- serviceType: iMessage, SMS or RCS. recipient: E.164 phone number or email address.
-- Inputs arrive only through argv: nothing is ever pasted into this source.
-- Exit 0 means Messages accepted the command, not that the message was delivered:
-- delivery is read back from chat.db. Needs macOS 13+ (the `account` class; earlier releases call it `service`).
--
-- Each step re-raises its own error number so the agent knows which step failed, with Apple's raw
-- error text and number kept in the message:
--   1001 account      `1st account whose service type = X` (no such account: -1719 Invalid index)
--   1002 participant  the recipient as a participant of that account (unresolvable: -1728)
--   1003 send         Messages refused the send itself (it may still have gone out: chat.db decides)
-- -1743 (Automation not allowed), -600/-609 (Messages not running / quit mid-call) and -1712 (timed
-- out) can happen at any step; the agent reads the raw number for those.
on run argv
	if (count of argv) is not 3 then error "usage: send.applescript <iMessage|SMS|RCS> <recipient> <text>" number -1700
	set serviceName to item 1 of argv
	set recipientId to item 2 of argv
	set messageText to item 3 of argv

	-- Apple events wait 120 s by default; say so explicitly. The agent's hard kill (Bridge:ScriptTimeout) is longer.
	with timeout of 120 seconds
		try
			tell application "Messages"
				if serviceName is "iMessage" then
					set targetAccount to 1st account whose service type = iMessage
				else if serviceName is "SMS" then
					set targetAccount to 1st account whose service type = SMS
				else if serviceName is "RCS" then
					set targetAccount to 1st account whose service type = RCS
				else
					error "Can’t make \"" & serviceName & "\" into type constant." number -1700
				end if
			end tell
		on error errText number errNum
			error "account " & serviceName & ": " & errText & " (" & errNum & ")" number 1001
		end try

		try
			-- The participant path works for a first message to a new number; `chat id` only finds existing chats.
			tell application "Messages" to set targetParticipant to participant recipientId of targetAccount
		on error errText number errNum
			error "participant " & recipientId & ": " & errText & " (" & errNum & ")" number 1002
		end try

		-- Marker on stderr: everything before it provably sent nothing (the agent may then retry safely).
		log "LINEAGENT:SENDING"

		try
			tell application "Messages" to send messageText to targetParticipant
		on error errText number errNum
			error "send: " & errText & " (" & errNum & ")" number 1003
		end try
	end timeout
	return
end run
