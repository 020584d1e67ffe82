#!/usr/bin/env bash
# selftest.sh: exercise every feature of messages_emulator.py against both chat.db schemas
# (macOS 15 and 26) in a temporary directory. Exits non-zero at the first mismatch.
# Needs only bash, coreutils and /usr/bin/python3 (queries go through Python's sqlite3).
#   tests/MessagesEmulator/selftest.sh            # full run
#   SELFTEST_MAX_RECORD_MS=100 selftest.sh         # relax the recordOnly speed bound on a busy machine
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EMU="$HERE/messages_emulator.py"
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1  # the checks import the module: leave no __pycache__ behind
FIXTURES="$HERE/../fixtures/chatdb"
MAX_RECORD_MS="${SELFTEST_MAX_RECORD_MS:-60}"
# A space in the path on purpose: paths must survive quoting and SQLite URIs.
ROOT="$(mktemp -d "${TMPDIR:-/tmp}/messages emulator selftest.XXXXXX")"
SCRIPTS="$ROOT/Scripts"
BG_PIDS=()

cleanup() {
  local pid
  for pid in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do kill -9 "$pid" 2>/dev/null || true; done
  sleep 0.3  # let detached updaters finish before their directory goes away
  rm -rf "$ROOT"
}
trap cleanup EXIT

CHECKS=0
fail() { echo "FAIL [schema ${S:-none}]: $*" >&2; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); }
expect_eq() { [[ "$2" == "$3" ]] || fail "$1: expected [$2], got [$3]"; ok; }
expect_match() { [[ "$3" =~ $2 ]] || fail "$1: [$3] does not match /$2/"; ok; }
now_ms() { date +%s%3N; }
section() { echo "-- ${S:+schema $S: }$*"; }

# q <sql>: query $H/chat.db read-only, one line per row, columns joined by '|', NULL as ''.
q() {
  "$PY" - "$H/chat.db" "$1" <<'PY'
import sqlite3, sys
path = sys.argv[1].replace("%", "%25").replace("?", "%3f").replace("#", "%23")
con = sqlite3.connect("file:" + path + "?mode=ro", uri=True, timeout=10)
for row in con.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
PY
}

# wait_for <label> <sql> <expected> [timeout s]: poll until the query prints <expected>.
wait_for() {
  local deadline=$(( $(now_ms) + ${4:-10} * 1000 )) got
  while :; do
    got="$(q "$2")"
    [[ "$got" == "$3" ]] && { ok; return 0; }
    (( $(now_ms) > deadline )) && fail "$1: waited for [$3], last saw [$got]"
    sleep 0.05
  done
}

# text_of <rowid>: decoded attributedBody of a message row.
text_of() {
  "$PY" - "$HERE" "$H/chat.db" "$1" <<'PY'
import sqlite3, sys
sys.path.insert(0, sys.argv[1])
import messages_emulator as m
con = sqlite3.connect(sys.argv[2], timeout=10)
blob = con.execute("SELECT attributedBody FROM message WHERE ROWID = ?", (int(sys.argv[3]),)).fetchone()[0]
sys.stdout.write(repr(m.decode_attributed_body(blob)))
PY
}

adm() { MESSAGES_EMULATOR_HOME="$H" "$EMU" "$@"; }
ctl() { adm control "$1"; }
last_rowid() { q "SELECT COALESCE(MAX(ROWID), 0) FROM message"; }

# run <cmd...>: sets RC, OUT, ERR (stdout via command substitution: a detached child that kept
# our stdout open would make this wait, which the timing checks below would catch).
run() {
  set +e
  OUT="$("$@" 2>"$ROOT/stderr")"
  RC=$?
  set -e
  ERR="$(cat "$ROOT/stderr")"
}
send() { run "$WRAP" "$SCRIPTS/send.applescript" "$@"; }
status() { run "$WRAP" "$SCRIPTS/status.applescript" "$@"; }

mkdir -p "$SCRIPTS"
for name in send status restart-messages; do
  printf -- '-- placeholder for %s.applescript\n' "$name" >"$SCRIPTS/$name.applescript"
done

# ------------------------------------------------------------------ typedstream
section "typedstream attributedBody"
"$PY" - "$HERE" "$FIXTURES/attributed-body" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import messages_emulator as m
fx = sys.argv[2]
read = lambda name: open(os.path.join(fx, name), "rb").read()
n = 0
def check(label, cond):
    global n
    if not cond:
        sys.exit("FAIL typedstream: " + label)
    n += 1
check("encode('Edited') == Edited.bin byte for byte", m.encode_attributed_body("Edited") == read("Edited.bin"))
check("Edited.bin", m.decode_attributed_body(read("Edited.bin")) == "Edited")
check("CheckThisOut_doubled.bin",
      m.decode_attributed_body(read("CheckThisOut_doubled.bin")) == "Check this out!Check this out!")
check("TruncatedHeader.bin -> None", m.decode_attributed_body(read("TruncatedHeader.bin")) is None)
samples = ["", "Edited", "a" * 200, "é" * 35000, "x" * 70000, "y" * 40000, "z" * 127, "z" * 128,
           "w" * 32767, "w" * 32768, "😀👍🏽👨‍👩‍👧", "\ufffc", "see \ufffc attached",
           "\u200fשלום\u200e abc \u202eevil", "line1\nline2\r\n\ttab \"q\" 'q' \\ \u2028"]
for t in samples:
    blob = m.encode_attributed_body(t)
    check("round trip len %d" % len(t), m.decode_attributed_body(blob) == t)
    check("bytes round trip len %d" % len(t), m.decode_attributed_body(m.encode_attributed_body(t.encode())) == t)
check("70,000-byte text", len(samples[3].encode()) == 70000)
def length_field(t):
    blob = m.encode_attributed_body(t)
    i = blob.index(b"\x01\x2b") + 2
    return blob[i:i + (1 if blob[i] < 0x80 else 3 if blob[i] == 0x81 else 5)]
check("1-byte length", length_field("Edited") == b"\x06")
check("0x81 length", length_field("a" * 200) == b"\x81\xc8\x00")
check("0x82 length", length_field("x" * 70000) == b"\x82" + (70000).to_bytes(4, "little"))
check("empty text -> 01 2B 00", b"\x01\x2b\x00" in m.encode_attributed_body(""))
# iI range length = UTF-16 length
check("iI range for emoji", b"\x86\x84\x02iI\x01\x02\x92" in m.encode_attributed_body("😀"))
check("iI range 0x81", b"\x86\x84\x02iI\x01\x81\xc8\x00\x92" in m.encode_attributed_body("a" * 200))
check("iI range 0x82", b"\x86\x84\x02iI\x01\x82" + (70000).to_bytes(4, "little") in m.encode_attributed_body("x" * 70000))
check("iI range of 35000 x é", b"\x86\x84\x02iI\x01\x82" + (35000).to_bytes(4, "little") in m.encode_attributed_body("é" * 35000))
# malformed input never raises
check("clamp at 86 84", m.decode_attributed_body(b"\x04\x0bstreamtyped\x01\x2b\x7fabc\x86\x84\x02iI") == "abc")
check("clamp, no 86 84", m.decode_attributed_body(b"\x01\x2b\x81\xff\x00abc") == "abc")
check("no 01 2B", m.decode_attributed_body(b"\x04\x0bstreamtyped\x81\xe8\x03") is None)
check("empty blob", m.decode_attributed_body(b"") is None and m.decode_attributed_body(None) is None)
check("01 2B 00", m.decode_attributed_body(b"\x01\x2b\x00\x86\x84") == "")
check("truncated 0x81 length", m.decode_attributed_body(b"\x01\x2b\x81\x05") is None)
check("truncated after 01 2B", m.decode_attributed_body(b"\x01\x2b") is None)
check("invalid UTF-8 -> replacement", m.decode_attributed_body(b"\x01\x2b\x02\xff\xfe\x86\x84") == "\ufffd\ufffd")
print("   %d typedstream checks passed" % n)
PY
ok
H="$ROOT/decode"; mkdir -p "$H"
run adm decode "$FIXTURES/attributed-body/CheckThisOut_doubled.bin"
expect_eq "decode command" "0|Check this out!Check this out!" "$RC|$OUT"
run adm decode "$FIXTURES/attributed-body/TruncatedHeader.bin"
expect_eq "decode command, no text" "1|" "$RC|$OUT"

# ------------------------------------------------------------------ argv byte-exactness
section "argv: 1,000 hostile argument lists, recorded byte-exact (recordOnly, 4 in parallel)"
H="$ROOT/argv home"; mkdir -p "$H"
WRAP="$ROOT/osascript-argv"
printf '#!/bin/sh\nMESSAGES_EMULATOR_HOME='"'%s'"' exec /usr/bin/python3 '"'%s'"' "$@"\n' "$H" "$EMU" >"$WRAP"
chmod +x "$WRAP"
ctl '{"recordOnly": true}'
"$PY" - "$WRAP" "$SCRIPTS" "$H" <<'PY'
import base64, collections, concurrent.futures, json, os, random, subprocess, sys
wrap, scripts, home = sys.argv[1:4]
rnd = random.Random(20240601)
atoms = ['"', "'", "\\", '\\"', "\\\\n", "`", "$(", "$HOME", "${x}", "\n", "\r", "\r\n", "\t", " ", "  ",
         ";", "&", "|", ">", "<", "*", "?", "~", "#", "%", "%s", "%n", "{0}", "-", "--", "-e",
         "\u200f", "\u200e", "\u202e", "\u2066", "\ufffc", "\ufeff", "\u2028", "\u00a0", "😀",
         "👨‍👩‍👧‍👦", "🇺🇸", "é", "e\u0301", "日本語", "عربى", "שלום", "\x7f", "\x01", "\x1b[31m",
         'tell application "Finder" to quit', '" & (do shell script "touch /tmp/pwned") & "',
         "end run", "«data utxt00410042»", "'; DROP TABLE message; --", "+12025550123", "a@b.c"]
def hostile(i):
    kind = i % 10
    if kind == 0:
        return ""
    if kind == 1 and i % 30 == 1:
        s = "".join(rnd.choice(atoms) for _ in range(4000))
        return s[:10000].ljust(10000, "x")            # 10,000 characters
    if kind == 2 and i % 50 == 2:
        return os.fsdecode(bytes([0xff, 0xfe, 0x80, 0x41, 0xc3]))  # not UTF-8: raw bytes must survive
    return "".join(rnd.choice(atoms) for _ in range(rnd.choice((1, 2, 3, 5, 12, 40))))
calls = []
for i in range(1000):
    argc = 3 if i % 25 else (0, 1, 2, 4, 5)[(i // 25) % 5]
    calls.append([hostile(i * 7 + j) for j in range(argc)])
def one(args):
    p = subprocess.run([wrap, os.path.join(scripts, "send.applescript"), *args], capture_output=True)
    return p.returncode, p.stdout, p.stderr
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = list(pool.map(one, calls))
bad = [r for r in results if r != (0, b"", b"")]
if bad:
    sys.exit("FAIL argv: %d calls did not exit 0 silently, e.g. %r" % (len(bad), bad[0][:1] + (bad[0][2][:300],)))
records = [json.loads(l) for l in open(os.path.join(home, "calls.ndjson"), "rb").read().splitlines()]
if len(records) != 1000:
    sys.exit("FAIL argv: %d records, expected 1000" % len(records))
for r in records:
    if r["script"] != "send.applescript" or r["argc"] != len(r["argv_b64"]) or not isinstance(r["pid"], int) \
            or not isinstance(r["t"], float):
        sys.exit("FAIL argv: bad record %r" % r)
want = collections.Counter(tuple(os.fsencode(a) for a in args) for args in calls)
got = collections.Counter(tuple(base64.b64decode(a) for a in r["argv_b64"]) for r in records)
if want != got:
    missing = list((want - got).items())[:1]
    sys.exit("FAIL argv: recorded argv differ from what was passed, e.g. missing %r" % (missing,))
print("   1000 calls, %d distinct argument lists, all byte-exact" % len(want))
PY
ok
expect_eq "recordOnly writes no chat.db" "no" "$([[ -e "$H/chat.db" ]] && echo yes || echo no)"

section "recordOnly speed (best of 15 runs, bound ${MAX_RECORD_MS} ms)"
best="$("$PY" - "$WRAP" "$SCRIPTS" <<'PY'
import subprocess, sys, time
wrap, scripts = sys.argv[1:3]
best = 1e9
for _ in range(15):
    t = time.perf_counter()
    subprocess.run([wrap, scripts + "/send.applescript", "iMessage", "+12025550123", "hi"], check=True)
    best = min(best, time.perf_counter() - t)
print(int(best * 1000))
PY
)"
echo "   recordOnly send: ${best} ms"
(( best < MAX_RECORD_MS )) || fail "recordOnly took ${best} ms (bound ${MAX_RECORD_MS} ms)"
ok

# ------------------------------------------------------------------ per schema
run_schema() {
  S="$1"
  H="$ROOT/home $S"
  WRAP="$ROOT/osascript $S"
  mkdir -p "$H"
  printf '#!/bin/sh\nMESSAGES_EMULATOR_HOME='"'%s'"' exec /usr/bin/python3 '"'%s'"' "$@"\n' "$H" "$EMU" >"$WRAP"
  chmod +x "$WRAP"
  local other=$([[ $S == 15 ]] && echo 26 || echo 15)
  local prefix=$([[ $S == 15 ]] && echo iMessage || echo any)
  local sms_prefix=$([[ $S == 15 ]] && echo SMS || echo any)
  local R=+12025550123 t0 t1 id id2 n

  section "init"
  send iMessage "$R" "before init"
  expect_eq "send without chat.db is an emulator error (exit 2)" 2 "$RC"
  expect_match "  ...and says so" "run .*init" "$ERR"
  run adm init --schema "$S" --me "me$S@icloud.com" --sms-number "+1555000000$S"
  expect_eq "init" 0 "$RC"
  expect_eq "journal mode" "wal" "$(q 'PRAGMA journal_mode')"
  expect_eq "core tables" "7" "$(q "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('message','handle','chat','chat_message_join','chat_handle_join','attachment','message_attachment_join')")"
  if [[ $S == 26 ]]; then
    expect_eq "macOS 26 columns present" "1|1" "$(q "SELECT (SELECT COUNT(*) FROM pragma_table_info('chat') WHERE name='is_pending_review'), (SELECT COUNT(*) FROM pragma_table_info('chat_message_join') WHERE name='index_state')")"
  else
    expect_eq "macOS 15 has no chat_service" "0" "$(q "SELECT COUNT(*) FROM sqlite_master WHERE name='chat_service'")"
  fi
  run adm init --schema "$S" --me "me$S@icloud.com" --sms-number "+1555000000$S"
  expect_eq "init again, same settings: idempotent" 0 "$RC"
  run adm init --schema "$other"
  expect_eq "init with other settings refused" 2 "$RC"
  run adm init --schema "$other" --force
  expect_eq "init --force" 0 "$RC"
  run adm init --schema "$S" --me "me$S@icloud.com" --sms-number "+1555000000$S" --force
  expect_eq "init --force back" 0 "$RC"
  expect_eq "schema recorded" "$S" "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["schema"])' "$H/state.json")"

  section "status"
  status
  expect_eq "status" "0|iMessage	E:me$S@icloud.com	true	connected
SMS	P:+1555000000$S	true	connected|" "$RC|$OUT|$ERR"

  section "send iMessage: the row, then sent, delivered"
  ctl '{"confirmDelayMs": 1500, "deliverDelayMs": 100}'
  t0="$("$PY" -c 'import time; print(time.time_ns() - 978307200 * 10**9)')"
  local s0=$(now_ms)
  send iMessage "$R" "Hello from the emulator 😀"
  local elapsed=$(( $(now_ms) - s0 ))
  t1="$("$PY" -c 'import time; print(time.time_ns() - 978307200 * 10**9)')"
  expect_eq "send: exit 0, no stdout, marker on stderr" "0||LINEAGENT:SENDING" "$RC|$OUT|$ERR"
  (( elapsed < 1200 )) || fail "send took ${elapsed} ms: the background updater must not hold the caller"
  ok
  id="$(last_rowid)"
  expect_eq "fresh row" "1|0|0|0|0||iMessage|E:me$S@icloud.com|0|0|0|0|0||1" \
    "$(q "SELECT is_from_me, error, is_sent, is_finished, is_delivered, text, service, account, date_read, date_delivered, item_type, associated_message_type, is_read, cache_roomnames, part_count FROM message WHERE ROWID=$id")"
  expect_eq "decoded text" "'Hello from the emulator 😀'" "$(text_of "$id")"
  expect_match "guid is an uppercase UUID" '^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$' "$(q "SELECT guid FROM message WHERE ROWID=$id")"
  expect_match "account_guid is a UUID" '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$' "$(q "SELECT account_guid FROM message WHERE ROWID=$id")"
  expect_eq "date in ns since 2001" "1" "$(q "SELECT date BETWEEN $t0 AND $t1 FROM message WHERE ROWID=$id")"
  expect_eq "handle" "$R|iMessage|us|" "$(q "SELECT h.id, h.service, h.country, h.uncanonicalized_id FROM message m JOIN handle h ON h.ROWID=m.handle_id WHERE m.ROWID=$id")"
  expect_eq "chat" "$prefix;-;$R|45|$R|iMessage" "$(q "SELECT c.guid, c.style, c.chat_identifier, c.service_name FROM chat_message_join j JOIN chat c ON c.ROWID=j.chat_id WHERE j.message_id=$id")"
  expect_eq "chat_handle_join" "1" "$(q "SELECT COUNT(*) FROM chat_handle_join j JOIN chat c ON c.ROWID=j.chat_id JOIN handle h ON h.ROWID=j.handle_id WHERE c.chat_identifier='$R' AND h.id='$R' AND h.service='iMessage'")"
  expect_eq "chat_message_join.message_date = date" "1" "$(q "SELECT j.message_date = m.date FROM chat_message_join j JOIN message m ON m.ROWID=j.message_id WHERE m.ROWID=$id")"
  wait_for "sent" "SELECT is_sent, is_finished, error FROM message WHERE ROWID=$id" "1|1|0"
  wait_for "delivered" "SELECT is_delivered, date_delivered > date FROM message WHERE ROWID=$id" "1|1"
  sleep 0.3
  expect_eq "not read without readDelayMs" "0|0" "$(q "SELECT date_read, is_read FROM message WHERE ROWID=$id")"

  section "second send reuses handle and chat"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50}'
  send iMessage "$R" "second"
  expect_eq "second send" 0 "$RC"
  expect_eq "one handle, one chat" "1|1" "$(q "SELECT (SELECT COUNT(*) FROM handle WHERE id='$R' AND service='iMessage'), (SELECT COUNT(*) FROM chat WHERE chat_identifier='$R')")"

  section "send: pipes are released at once (detached updater), Popen check"
  ctl '{"confirmDelayMs": 2500, "deliverDelayMs": 50}'
  "$PY" - "$WRAP" "$SCRIPTS" "$H/chat.db" <<'PY'
import sqlite3, subprocess, sys, time
wrap, scripts, db = sys.argv[1:4]
t = time.monotonic()
p = subprocess.Popen([wrap, scripts + "/send.applescript", "iMessage", "+12025550999", "pipes"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
out, err = p.communicate(timeout=10)
elapsed = time.monotonic() - t
if p.returncode != 0 or out != b"" or err != b"LINEAGENT:SENDING\n":
    sys.exit("FAIL pipes: rc=%r out=%r err=%r" % (p.returncode, out, err))
if elapsed > 1.5:
    sys.exit("FAIL pipes: communicate() took %.2f s (child kept stdout/stderr open?)" % elapsed)
row = sqlite3.connect(db).execute("SELECT is_sent FROM message ORDER BY ROWID DESC LIMIT 1").fetchone()
if row != (0,):
    sys.exit("FAIL pipes: row already sent, so the caller waited for the updater")
print("   communicate() returned after %.0f ms" % (elapsed * 1000))
PY
  ok
  id="$(last_rowid)"
  wait_for "late confirm still happens" "SELECT is_sent, is_delivered FROM message WHERE ROWID=$id" "1|1"

  section "read receipts (readDelayMs, readBy)"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50, "readDelayMs": 100, "readBy": ["+12025550111"]}'
  send iMessage +12025550111 "read me"; id="$(last_rowid)"
  send iMessage +12025550222 "will not be read"; id2="$(last_rowid)"
  wait_for "read by listed recipient" "SELECT is_delivered, date_read >= date_delivered, is_read FROM message WHERE ROWID=$id" "1|1|1"
  wait_for "unlisted recipient delivered" "SELECT is_delivered FROM message WHERE ROWID=$id2" "1"
  sleep 0.4
  expect_eq "unlisted recipient not read" "0|0" "$(q "SELECT date_read, is_read FROM message WHERE ROWID=$id2")"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50, "readDelayMs": 50}'
  send SMS +12025550222 "read without readBy"; id="$(last_rowid)"
  wait_for "readDelayMs without readBy: read" "SELECT is_read, date_read > 0 FROM message WHERE ROWID=$id" "1|1"

  section "iMessage to a non-iMessage number: error 22"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50, "nonImessage": ["+12025550333"]}'
  send iMessage +12025550333 "no iMessage here"; id="$(last_rowid)"
  expect_eq "accepted by Messages" "0|LINEAGENT:SENDING" "$RC|$ERR"
  wait_for "error 22" "SELECT error, is_finished, is_sent FROM message WHERE ROWID=$id" "22|1|0"
  sleep 0.4
  expect_eq "never delivered" "0|0" "$(q "SELECT is_delivered, date_delivered FROM message WHERE ROWID=$id")"
  expect_eq "lastFailedMessageRowID trigger ran" "$id" "$(q "SELECT value FROM kvtable WHERE key='lastFailedMessageRowID'")"
  send SMS +12025550333 "SMS is fine"; id="$(last_rowid)"
  wait_for "SMS to that number delivered" "SELECT error, is_sent, is_delivered FROM message WHERE ROWID=$id" "0|1|1"

  section "SMS and RCS"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50}'
  send SMS +12025550444 "by SMS"; id="$(last_rowid)"
  expect_eq "SMS row" "0|SMS|P:+1555000000$S|+12025550444|SMS|$sms_prefix;-;+12025550444" \
    "$RC|$(q "SELECT m.service, m.account, h.id, h.service, c.guid FROM message m JOIN handle h ON h.ROWID=m.handle_id JOIN chat_message_join j ON j.message_id=m.ROWID JOIN chat c ON c.ROWID=j.chat_id WHERE m.ROWID=$id")"
  wait_for "SMS delivered" "SELECT is_sent, is_finished, is_delivered FROM message WHERE ROWID=$id" "1|1|1"
  send RCS +12025550444 "by RCS"; id="$(last_rowid)"
  expect_eq "RCS row" "0|RCS" "$RC|$(q "SELECT service FROM message WHERE ROWID=$id")"
  send iMessage user@example.com "to an email"; id="$(last_rowid)"
  expect_eq "email handle has no country" "0|user@example.com|" "$RC|$(q "SELECT h.id, h.country FROM message m JOIN handle h ON h.ROWID=m.handle_id WHERE m.ROWID=$id")"

  section "ghost row"
  ctl '{"ghost": true, "confirmDelayMs": 50, "deliverDelayMs": 50}'
  send iMessage +12025550555 "vanishes"; id="$(last_rowid)"
  expect_eq "ghost send reports success" "0||LINEAGENT:SENDING" "$RC|$OUT|$ERR"
  expect_eq "ghost row" "||SMS|1|0" "$(q "SELECT text, attributedBody, service, is_from_me, (SELECT COUNT(*) FROM chat_message_join WHERE message_id=$id) FROM message WHERE ROWID=$id")"
  expect_eq "ghost text is empty, not NULL" "1" "$(q "SELECT text = '' FROM message WHERE ROWID=$id")"
  sleep 0.5
  expect_eq "ghost never updated" "0|0|0|0|0" "$(q "SELECT is_sent, is_finished, is_delivered, error, date_delivered FROM message WHERE ROWID=$id")"

  section "injected failures (failWith)"
  local code msg before
  before="$(last_rowid)"
  while IFS='|' read -r code msg; do
    ctl "{\"failWith\": $code}"
    send iMessage "$R" "nope"
    expect_eq "failWith $code" "1||$SCRIPTS/send.applescript: execution error: $msg ($code)" "$RC|$OUT|$ERR"
  done <<EOF
-1728|Messages got an error: Can’t get participant id "$R".
-1743|Not authorized to send Apple events to Messages.
-2753|The variable SMS is not defined.
-1712|Messages got an error: AppleEvent timed out.
-1700|Can’t make "iMessage" into type constant.
-600|Messages got an error: Application isn’t running.
-1234|Messages got an error: An error of type -1234 has occurred.
EOF
  ctl '{"failWith": -1743, "failMessage": "custom text."}'
  send iMessage "$R" "nope"
  expect_eq "failMessage" "1|$SCRIPTS/send.applescript: execution error: custom text. (-1743)" "$RC|$ERR"
  expect_eq "failures wrote no rows" "$before" "$(last_rowid)"
  status
  expect_eq "status fails too by default" "1|$SCRIPTS/status.applescript: execution error: custom text. (-1743)" "$RC|$ERR"
  ctl '{"failWith": -1728, "failOn": ["send"]}'
  status
  expect_eq "failOn [send]: status works" "0" "$RC"
  send iMessage "$R" "nope"
  expect_eq "failOn [send]: send fails" "1" "$RC"
  ctl '{"failWith": -1728, "failOn": ["status.applescript"]}'
  status
  expect_eq "failOn [status.applescript]: status fails" "1|$SCRIPTS/status.applescript: execution error: Messages got an error: Can’t get account 1. Invalid index. (-1728)" "$RC|$ERR"

  section "failCount"
  ctl '{"failWith": -1712, "failCount": 2, "confirmDelayMs": 50, "deliverDelayMs": 50}'
  send iMessage "$R" "try 1"; expect_eq "failCount: call 1 fails" 1 "$RC"
  send iMessage "$R" "try 2"; expect_eq "failCount: call 2 fails" 1 "$RC"
  send iMessage "$R" "try 3"; expect_eq "failCount: call 3 succeeds" "0|LINEAGENT:SENDING" "$RC|$ERR"
  expect_eq "only the successful try wrote a row" "'try 3'" "$(text_of "$(last_rowid)")"
  send iMessage "$R" "try 4"; expect_eq "failCount: call 4 succeeds" 0 "$RC"
  ctl '{"failWith": -1712, "failCount": 2, "confirmDelayMs": 50, "deliverDelayMs": 50}'
  send iMessage "$R" "again"; expect_eq "rewriting control.json restarts the count" 1 "$RC"
  adm reset
  send iMessage "$R" "again"; expect_eq "reset restarts the count (1)" 1 "$RC"
  send iMessage "$R" "again"; expect_eq "reset restarts the count (2)" 1 "$RC"
  send iMessage "$R" "again"; expect_eq "reset restarts the count (3: passes)" 0 "$RC"
  ctl '{"failWith": -1712, "failCount": 0}'
  send iMessage "$R" "zero"; expect_eq "failCount 0 never fails" 0 "$RC"

  section "argument checks of send.applescript"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50}'
  before="$(last_rowid)"
  send iMessage "$R"
  expect_eq "2 args" "1|$SCRIPTS/send.applescript: execution error: usage: send.applescript <iMessage|SMS|RCS> <recipient> <text> (-1700)" "$RC|$ERR"
  send iMessage "$R" a b; expect_eq "4 args" 1 "$RC"
  send; expect_eq "0 args" 1 "$RC"
  send any "$R" "hi"
  expect_eq "service any" "1|$SCRIPTS/send.applescript: execution error: Unknown service type any (-1700)" "$RC|$ERR"
  send imessage "$R" "hi"; expect_eq "service names are case-sensitive" 1 "$RC"
  ctl '{"smsAccount": false}'
  send SMS "$R" "hi"
  expect_eq "no SMS account" "1|$SCRIPTS/send.applescript: execution error: The variable SMS is not defined. (-2753)" "$RC|$ERR"
  status
  expect_eq "status without SMS account" "0|iMessage	E:me$S@icloud.com	true	connected" "$RC|$OUT"
  ctl '{"imessageSignedIn": false}'
  send iMessage "$R" "hi"
  expect_match "not signed in" "^1[|].*execution error: .*\(-1728\)$" "$RC|$ERR"
  status
  expect_eq "status signed out" "0|iMessage	E:me$S@icloud.com	false	disconnected
SMS	P:+1555000000$S	true	connected" "$RC|$OUT"
  expect_eq "refused calls wrote no rows" "$before" "$(last_rowid)"

  section "hangs"
  ctl '{"hang": "before_send", "hangCount": 1, "confirmDelayMs": 50, "deliverDelayMs": 50}'
  before="$(last_rowid)"
  "$WRAP" "$SCRIPTS/send.applescript" iMessage "$R" "hang before" >"$ROOT/hang.out" 2>"$ROOT/hang.err" &
  local hpid=$!; BG_PIDS+=("$hpid")
  sleep 1
  kill -0 "$hpid" 2>/dev/null || fail "before_send: process ended instead of hanging"
  ok
  expect_eq "before_send: nothing sent, no marker" "$before|" "$(last_rowid)|$(cat "$ROOT/hang.err")"
  kill -9 "$hpid"; wait "$hpid" 2>/dev/null || true
  s0=$(now_ms)
  send iMessage "$R" "after the hang"
  expect_eq "hangCount 1: the next call does not hang" "0|LINEAGENT:SENDING" "$RC|$ERR"
  (( $(now_ms) - s0 < 3000 )) || fail "second call was slow"
  ok

  ctl '{"hang": "after_send", "confirmDelayMs": 50, "deliverDelayMs": 50}'
  "$WRAP" "$SCRIPTS/send.applescript" iMessage "$R" "hang after" >"$ROOT/hang.out" 2>"$ROOT/hang.err" &
  hpid=$!; BG_PIDS+=("$hpid")
  wait_for "after_send: row written while hanging" "SELECT COUNT(*) FROM message WHERE ROWID > $before + 1" "1"
  id="$(last_rowid)"
  sleep 0.5
  kill -0 "$hpid" 2>/dev/null || fail "after_send: process ended instead of hanging"
  ok
  expect_eq "after_send: marker printed" "LINEAGENT:SENDING" "$(cat "$ROOT/hang.err")"
  kill -9 "$hpid"; wait "$hpid" 2>/dev/null || true
  wait_for "after_send: killed caller, message still delivered" "SELECT is_sent, is_delivered FROM message WHERE ROWID=$id" "1|1"

  ctl '{"hang": "status"}'
  "$WRAP" "$SCRIPTS/status.applescript" >"$ROOT/hang.out" 2>"$ROOT/hang.err" &
  hpid=$!; BG_PIDS+=("$hpid")
  sleep 0.8
  kill -0 "$hpid" 2>/dev/null || fail "status hang: process ended"
  ok
  expect_eq "status hang: no output" "" "$(cat "$ROOT/hang.out")"
  kill -9 "$hpid"; wait "$hpid" 2>/dev/null || true

  ctl '{"hang": "before_send", "hangMaxMs": 300}'
  s0=$(now_ms)
  send iMessage "$R" "times out"
  elapsed=$(( $(now_ms) - s0 ))
  expect_eq "hangMaxMs: -1712 after the hang" "1|$SCRIPTS/send.applescript: execution error: Messages got an error: AppleEvent timed out. (-1712)" "$RC|$ERR"
  (( elapsed >= 300 )) || fail "hangMaxMs returned after ${elapsed} ms"
  ok

  section "sendDelayMs"
  ctl '{"sendDelayMs": 400, "confirmDelayMs": 50, "deliverDelayMs": 50}'
  s0=$(now_ms)
  send iMessage "$R" "slow"
  elapsed=$(( $(now_ms) - s0 ))
  expect_eq "sendDelayMs send" "0|LINEAGENT:SENDING" "$RC|$ERR"
  (( elapsed >= 400 )) || fail "sendDelayMs: returned after ${elapsed} ms"
  ok

  section "restart-messages, unknown scripts, recordOnly"
  ctl '{"confirmDelayMs": 50, "deliverDelayMs": 50}'
  run "$WRAP" "$SCRIPTS/restart-messages.applescript"
  expect_eq "restart-messages" "0||" "$RC|$OUT|$ERR"
  run "$WRAP" "$SCRIPTS/other.applescript" x
  expect_match "unknown script" "^1[|].*other\.applescript: execution error: .*\(-1728\)$" "$RC|$ERR"
  ctl '{"recordOnly": true}'
  before="$(last_rowid)"
  send iMessage "$R" "recorded only"
  expect_eq "recordOnly: exit 0, silent, no row" "0|||$before" "$RC|$OUT|$ERR|$(last_rowid)"
  ctl '{"requireScriptFile": true}'
  run "$WRAP" "$ROOT/missing/send.applescript" iMessage "$R" x
  expect_match "requireScriptFile" "^1[|]osascript: .*No such file or directory \(-43\)$" "$RC|$ERR"
  printf '{"failWith": ' >"$H/control.json"
  send iMessage "$R" "x"
  expect_match "broken control.json is an emulator error" "^2[|]messages_emulator: control.json is not valid JSON" "$RC|$ERR"
  rm "$H/control.json"
  status
  expect_eq "absent control.json = defaults" 0 "$RC"

  section "calls.ndjson"
  "$PY" - "$H/calls.ndjson" "$R" <<'PY'
import base64, json, sys
recs = [json.loads(l) for l in open(sys.argv[1], "rb")]
names = {r["script"] for r in recs}
assert {"send.applescript", "status.applescript", "restart-messages.applescript", "other.applescript"} <= names, names
last_send = [r for r in recs if r["script"] == "send.applescript"][-1]
assert [base64.b64decode(a).decode() for a in last_send["argv_b64"]] == ["iMessage", sys.argv[2], "x"], last_send
assert last_send["argc"] == 3 and last_send["pid"] > 0 and last_send["t"] > 1.7e9
assert any(r["script"] == "status.applescript" and r["argc"] == 0 for r in recs)
print("   %d calls logged" % len(recs))
PY
  ok

  section "incoming"
  run adm incoming +12025550666 "a reply ✅"
  id="$OUT"
  expect_eq "incoming prints the new ROWID" "0|$(last_rowid)" "$RC|$id"
  expect_eq "incoming row" "0|1|0|1|0||iMessage|+12025550666|$prefix;-;+12025550666" \
    "$(q "SELECT m.is_from_me, m.is_finished, m.is_sent, m.is_delivered, m.error, m.text, m.service, h.id, c.guid FROM message m JOIN handle h ON h.ROWID=m.handle_id JOIN chat_message_join j ON j.message_id=m.ROWID JOIN chat c ON c.ROWID=j.chat_id WHERE m.ROWID=$id")"
  expect_eq "incoming text" "'a reply ✅'" "$(text_of "$id")"
  run adm incoming --service SMS +12025550666 "--not an option"
  expect_eq "incoming --service SMS" "0|SMS|P:+1555000000$S|'--not an option'" "$RC|$(q "SELECT service, account FROM message WHERE ROWID=$OUT")|$(text_of "$OUT")"
  run adm incoming +12025550666 "--" --service SMS
  expect_eq "incoming trailing --service, text --" "0|SMS|'--'" "$RC|$(q "SELECT service FROM message WHERE ROWID=$OUT")|$(text_of "$OUT")"
  run adm incoming +12025550666 "--service"
  expect_eq "incoming text --service" "0|iMessage|'--service'" "$RC|$(q "SELECT service FROM message WHERE ROWID=$OUT")|$(text_of "$OUT")"
  run adm incoming +12025550666
  expect_eq "incoming without text: usage error" "2" "$RC"

  section "concurrent sends (12 processes at once)"
  ctl '{"confirmDelayMs": 100, "deliverDelayMs": 100, "readDelayMs": 50}'
  before="$(last_rowid)"
  "$PY" - "$WRAP" "$SCRIPTS" "$H/chat.db" "$HERE" "$before" <<'PY'
import collections, sqlite3, subprocess, sys, time
wrap, scripts, db, here, before = sys.argv[1:6]
sys.path.insert(0, here)
import messages_emulator as m
texts = ['quote " and \\ backslash', "new\nline\r\n\ttab", "😀👨‍👩‍👧‍👦🇺🇸", "\u200fRTL\u202e mark", "\ufffc", "",
         "é" * 5000, "x" * 10000, "' ; DROP TABLE message; --", "$(touch /tmp/x) `id`", "日本語 עברית", "end"]
recipients = ["+12025550701", "+12025550702", "friend@example.com"]
jobs = [(["iMessage", "SMS", "RCS"][i % 3], recipients[i % 3], t) for i, t in enumerate(texts)]
procs = [subprocess.Popen([wrap, scripts + "/send.applescript", *j], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
         for j in jobs]
for p in procs:
    out, err = p.communicate(timeout=60)
    if (p.returncode, out, err) != (0, b"", b"LINEAGENT:SENDING\n"):
        sys.exit("FAIL concurrent: rc=%r out=%r err=%r" % (p.returncode, out, err[:500]))
con = sqlite3.connect(db, timeout=10)
deadline = time.time() + 20
while True:
    rows = con.execute("SELECT m.ROWID, m.service, h.id, m.attributedBody, m.is_sent, m.is_delivered, m.is_read,"
                       " (SELECT COUNT(*) FROM chat_message_join j WHERE j.message_id = m.ROWID)"
                       " FROM message m JOIN handle h ON h.ROWID = m.handle_id WHERE m.ROWID > ?", (int(before),)).fetchall()
    if len(rows) == len(jobs) and all(r[4:7] == (1, 1, 1) for r in rows):
        break
    if time.time() > deadline:
        sys.exit("FAIL concurrent: rows not all sent/delivered/read: %r" % [r[:3] + r[4:] for r in rows])
    time.sleep(0.1)
got = collections.Counter((r[1], r[2], m.decode_attributed_body(r[3])) for r in rows)
if got != collections.Counter(jobs) or any(r[7] != 1 for r in rows):
    sys.exit("FAIL concurrent: rows differ from the sends")
if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
    sys.exit("FAIL concurrent: integrity_check")
dups = con.execute("SELECT COUNT(*) FROM (SELECT id, service FROM handle GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0]
if dups:
    sys.exit("FAIL concurrent: duplicate handles")
print("   %d parallel sends: all rows, texts, joins, sent/delivered/read states correct" % len(jobs))
PY
  ok

  section "dump"
  run adm dump
  n="$(q "SELECT COUNT(*) FROM message")"
  expect_eq "dump: one JSON line per message" "0|$n" "$RC|$(printf '%s\n' "$OUT" | "$PY" -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin]; assert all({"ROWID","guid","handle","service","is_from_me","error","is_sent","is_finished","is_delivered","date","date_read","text"} <= r.keys() for r in rows); print(len(rows))')"
  expect_match "dump shows decoded text" '"text": "a reply \\u2705"' "$OUT"

  expect_eq "integrity_check" "ok" "$(q 'PRAGMA integrity_check')"
  [[ ! -s "$H/emulator-errors.log" ]] || fail "background updater errors: $(cat "$H/emulator-errors.log")"
  ok
}

run_schema 15
run_schema 26
S=""
echo "selftest passed: $CHECKS checks (typedstream, argv x1000, recordOnly ${best} ms, schemas 15 and 26)"
