-- send.applescript <serviceType> <recipient> <text>
-- serviceType: iMessage, SMS or RCS. recipient: E.164 phone number or email address.
-- Inputs arrive only through argv: nothing is ever pasted into this source.
-- Exit 0 means Messages accepted the command, not that the message was delivered:
-- delivery is read back from chat.db. Needs macOS 13+ (the `account` class; earlier releases call it `service`).
on run argv
	if (count of argv) is not 3 then error "usage: send.applescript <iMessage|SMS|RCS> <recipient> <text>" number -1700
	set serviceName to item 1 of argv
	set recipientId to item 2 of argv
	set messageText to item 3 of argv

	tell application "Messages"
		if serviceName is "iMessage" then
			set targetAccount to 1st account whose service type = iMessage
		else if serviceName is "SMS" then
			set targetAccount to 1st account whose service type = SMS
		else if serviceName is "RCS" then
			set targetAccount to 1st account whose service type = RCS
		else
			error "Unknown service type " & serviceName number -1700
		end if
		-- The participant path works for a first message to a new number; `chat id` only finds existing chats.
		set targetParticipant to participant recipientId of targetAccount
	end tell

	-- Marker on stderr: everything before it provably sent nothing (the agent may then retry safely).
	log "LINEAGENT:SENDING"

	tell application "Messages"
		send messageText to targetParticipant
	end tell
	return
end run
