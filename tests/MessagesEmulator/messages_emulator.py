#!/usr/bin/python3
"""Messages.app emulator for LineAgent tests (Linux CI has no Mac).

The agent runs `<osascript> <script file> <args...>`. Tests point its osascript path at a
wrapper that runs this program, which then behaves like Messages.app: it answers the
LineAgent scripts (send / status / restart-messages, chosen by the script file's basename)
and writes rows into a chat.db built from Apple's real schema
(tests/fixtures/chatdb/schema-macos{15,26}.sql), the way Messages does.

State lives in $MESSAGES_EMULATOR_HOME:
  chat.db        created by `init`, WAL mode
  control.json   optional behaviour switches, re-read on every invocation (see README.md)
  calls.ndjson   one JSON line per script invocation, argv recorded byte-exact (base64)
  state.json     account names, schema, counters (guarded by flock on state.lock)
  emulator-errors.log   errors from detached background updaters (they have no stderr)

Admin commands (first argument): init, incoming, dump, decode, control, reset, calls.
Anything else is taken as a script path.  Standard library only; Python 3.11.
Only `os` and `sys` are imported up front so that a recordOnly send stays fast.
"""

import os
import sys

DEFAULT_ME = "me@icloud.com"
DEFAULT_SMS_NUMBER = "+15550000000"
SERVICES = ("iMessage", "SMS", "RCS")
APPLE_EPOCH_UNIX = 978307200  # 2001-01-01T00:00:00Z
BUSY_TIMEOUT_S = 10.0

# Functions that chat.db triggers call and that only exist inside Messages/imagent.
MESSAGES_SQL_FUNCTIONS = (
    "verify_chat", "delete_attachment_path", "before_delete_attachment_path",
    "after_delete_message_plugin", "delete_chat_background_before_deleting_chat",
    "is_mic_enabled", "guid_for_chat",
)

# typedstream attributedBody, cut from fixtures/chatdb/attributed-body/Edited.bin:
# PREFIX ends with `01 2B` (NSString follows: <length> <UTF-8 bytes>); SUFFIX_HEAD is the
# attribute run `86 84 02 'i' 'I' 01` (range location 1) followed by the range length
# (UTF-16 units), then SUFFIX_TAIL.  encode_attributed_body("Edited") == Edited.bin.
TS_PREFIX = bytes.fromhex(
    "040b73747265616d747970656481e803840140848484124e5341747472696275746564537472696e6700"
    "8484084e534f626a656374008592848484084e53537472696e67019484012b")
TS_SUFFIX_HEAD = bytes.fromhex("868402694901")
TS_SUFFIX_TAIL = bytes.fromhex(
    "928484840c4e5344696374696f6e61727900948401690292849696265f5f6b494d426173655772697469"
    "6e67446972656374696f6e4174747269627574654e616d658692848484084e534e756d62657200848407"
    "4e5356616c7565009484012a848401719dff86928496961d5f5f6b494d4d657373616765506172744174"
    "747269627574654e616d658692849b9c9d9d00868686")

ERROR_MESSAGES = {
    -1728: "Messages got an error: Can\u2019t get participant id \"{recipient}\".",
    -1743: "Not authorized to send Apple events to Messages.",
    -2753: "The variable SMS is not defined.",
    -1712: "Messages got an error: AppleEvent timed out.",
    -1700: "Can\u2019t make \"{service}\" into type constant.",
    -600: "Messages got an error: Application isn\u2019t running.",
}


class EmulatorError(Exception):
    """A usage or setup error: printed as `messages_emulator: ...`, exit 2."""


# ----------------------------------------------------------------------------- output

def _write(stream, text):
    """Write text as UTF-8 (argv-derived surrogates go back to their original bytes)."""
    stream.buffer.write(text.encode("utf-8", "surrogateescape"))
    stream.buffer.flush()


def out(text):
    _write(sys.stdout, text)


def err(text):
    _write(sys.stderr, text)


def clean(text):
    """A str safe for SQLite/JSON: undecodable argv bytes become U+FFFD."""
    return os.fsencode(text).decode("utf-8", "replace")


# ----------------------------------------------------------------------------- typedstream

def _ts_int(n):
    """typedstream integer: 1 byte (< 0x80), 0x81 + int16 LE, or 0x82 + int32 LE.

    typedstream integers are signed, so 0x81 is only used below 0x8000; an unsigned-uint16
    reader decodes every value written here correctly as well."""
    if n < 0x80:
        return bytes([n])
    if n < 0x8000:
        return b"\x81" + n.to_bytes(2, "little")
    return b"\x82" + n.to_bytes(4, "little")


def encode_attributed_body(text):
    """message.attributedBody blob (typedstream NSAttributedString) for text (str or bytes)."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    utf16_len = len(raw.decode("utf-8", "replace").encode("utf-16-le")) // 2
    return (TS_PREFIX + _ts_int(len(raw)) + raw
            + TS_SUFFIX_HEAD + _ts_int(utf16_len) + TS_SUFFIX_TAIL)


def decode_attributed_body(blob):
    """Plain text of an attributedBody blob, or None when it holds no text.

    Finds the first `01 2B`, reads the length (1 byte < 0x80, 0x81 + uint16 LE,
    0x82 + uint32 LE), decodes that many bytes as UTF-8; a length running past the end of
    the data is cut at the next `86 84`.  Never raises on malformed input."""
    if not blob:
        return None
    blob = bytes(blob)
    start = blob.find(b"\x01\x2b")
    if start < 0:
        return None
    pos = start + 2
    if pos >= len(blob):
        return None
    tag = blob[pos]
    if tag < 0x80:
        length, pos = tag, pos + 1
    elif tag in (0x81, 0x82):
        width = 2 if tag == 0x81 else 4
        if pos + 1 + width > len(blob):
            return None
        length = int.from_bytes(blob[pos + 1:pos + 1 + width], "little")
        pos += 1 + width
    else:
        return None
    end = pos + length
    if end > len(blob):
        cut = blob.find(b"\x86\x84", pos)
        end = cut if cut >= 0 else len(blob)
    return blob[pos:end].decode("utf-8", "replace")


# ----------------------------------------------------------------------------- files & state

def emulator_home():
    home = os.environ.get("MESSAGES_EMULATOR_HOME")
    if not home:
        raise EmulatorError("MESSAGES_EMULATOR_HOME is not set")
    os.makedirs(home, exist_ok=True)
    return home


def write_atomic(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_state(home):
    import json
    try:
        with open(os.path.join(home, "state.json"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    return json.loads(data) if data.strip() else {}


def update_state(home, change):
    """Run change(state) under an exclusive flock; save the state; return change's result."""
    import fcntl
    import json
    lock_fd = os.open(os.path.join(home, "state.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        state = read_state(home)
        result = change(state)
        write_atomic(os.path.join(home, "state.json"),
                     json.dumps(state, indent=1, sort_keys=True).encode())
        return result
    finally:
        os.close(lock_fd)  # releases the lock


def log_call(home, script_path, args):
    """Append one line to calls.ndjson (flock'ed single append, so parallel calls never mix)."""
    import base64
    import fcntl
    import json
    import time
    record = {
        "script": clean(os.path.basename(script_path)),
        "path": clean(script_path),
        "argv_b64": [base64.b64encode(os.fsencode(a)).decode("ascii") for a in args],
        "argc": len(args),
        "pid": os.getpid(),
        "t": time.time(),
    }
    line = memoryview((json.dumps(record, separators=(",", ":")) + "\n").encode("ascii"))
    fd = os.open(os.path.join(home, "calls.ndjson"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        while line:
            line = line[os.write(fd, line):]
    finally:
        os.close(fd)


def load_control(home):
    """control.json as a dict ({} when absent) and a stamp (inode, mtime, size, CRC) of it.

    Counters (failCount, hangCount) restart whenever the stamp changes, i.e. whenever a
    test rewrites control.json.  A half-written file is retried for ~200 ms."""
    import json
    import time
    path = os.path.join(home, "control.json")
    problem = None
    for _ in range(40):
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return {}, None
        import zlib
        stamp = [st.st_ino, st.st_mtime_ns, st.st_size, zlib.crc32(data)]
        if data.strip():
            try:
                control = json.loads(data)
            except ValueError as e:
                problem = "control.json is not valid JSON: %s" % e
            else:
                if not isinstance(control, dict):
                    raise EmulatorError("control.json must hold a JSON object")
                return control, stamp
        else:
            problem = None
        time.sleep(0.005)
    if problem:
        raise EmulatorError(problem)
    return {}, stamp


def ctl_number(control, key, default=None, integer=False):
    value = control.get(key, default)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (value < 0 and key != "failWith"):
        raise EmulatorError("control.json: %s must be a%s number, got %r"
                            % (key, "n integer" if integer else "", value))
    return value


def ctl_list(control, key):
    value = control.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise EmulatorError("control.json: %s must be a list, got %r" % (key, value))
    return value


def consume(home, kind, limit, stamp):
    """True if this call may take one more of `limit` events of `kind` (None = unlimited)."""
    if limit is None:
        return True

    def take(state):
        counters = state.get("counters")
        if not isinstance(counters, dict) or counters.get("stamp") != stamp:
            counters = state["counters"] = {"stamp": stamp}
        used = counters.get(kind, 0)
        if used >= limit:
            return False
        counters[kind] = used + 1
        return True

    return update_state(home, take)


# ----------------------------------------------------------------------------- database

def _sql_noop(*_args):
    return None


def connect(home, create=False, path=None):
    """A connection with Messages' trigger functions stubbed and a 10 s busy timeout.

    Without create, the db is opened with mode=rw so that a missing chat.db (e.g. a test
    directory deleted under a background updater) is an error, never a new empty file."""
    import sqlite3
    path = os.path.abspath(path or os.path.join(home, "chat.db"))
    if create:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    else:
        if not os.path.exists(path):
            raise EmulatorError("%s does not exist: run `messages_emulator.py init` first" % path)
        uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    for name in MESSAGES_SQL_FUNCTIONS:
        con.create_function(name, -1, _sql_noop)
    return con


def now_ns():
    """Now as Apple's chat.db date: nanoseconds since 2001-01-01T00:00:00Z."""
    import time
    return time.time_ns() - APPLE_EPOCH_UNIX * 1_000_000_000


def _format_uuid(raw16, version):
    b = bytearray(raw16)
    b[6] = (b[6] & 0x0F) | (version << 4)
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex().upper()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def new_guid():
    return _format_uuid(os.urandom(16), 4)


def account_guid(account):
    """A stable GUID per account (Messages keeps one per account)."""
    import hashlib
    return _format_uuid(hashlib.md5(("lineagent-emulator:" + account).encode()).digest(), 3)


class ChatDb:
    """Writes rows the way Messages does; columns are probed, never assumed."""

    def __init__(self, con):
        self.con = con
        self._columns = {}

    def columns(self, table):
        if table not in self._columns:
            self._columns[table] = {r[1] for r in self.con.execute("PRAGMA table_info(%s)" % table)}
        return self._columns[table]

    def insert(self, table, values, verb="INSERT"):
        present = self.columns(table)
        names = [k for k in values if k in present]
        sql = "%s INTO %s (%s) VALUES (%s)" % (verb, table, ", ".join(names), ", ".join("?" * len(names)))
        return self.con.execute(sql, [values[k] for k in names]).lastrowid

    def update_message(self, rowid, values):
        present = self.columns("message")
        names = [k for k in values if k in present]
        sql = "UPDATE message SET %s WHERE ROWID = ?" % ", ".join(k + " = ?" for k in names)
        self.con.execute(sql, [values[k] for k in names] + [rowid])

    def schema_version(self):
        """'26' if the db has macOS 26 tables (service-agnostic `any;-;` chats), else '15'."""
        row = self.con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chat_service'").fetchone()
        return "26" if row else "15"

    def ensure_handle(self, address, service):
        row = self.con.execute(
            "SELECT ROWID FROM handle WHERE id = ? AND service = ?", (address, service)).fetchone()
        if row:
            return row[0]
        is_phone = "@" not in address
        return self.insert("handle", {
            "id": address, "country": "us" if is_phone else None, "service": service,
            "uncanonicalized_id": None, "person_centric_id": None,
        })

    def ensure_chat(self, address, service, handle_id, account, my_address):
        prefix = "any" if self.schema_version() == "26" else service
        guid = "%s;-;%s" % (prefix, address)
        row = self.con.execute("SELECT ROWID FROM chat WHERE guid = ?", (guid,)).fetchone()
        if row:
            chat_id = row[0]
        else:
            chat_id = self.insert("chat", {
                "guid": guid, "style": 45, "state": 3, "account_id": account_guid(account),
                "chat_identifier": address, "service_name": service, "account_login": account,
                "last_addressed_handle": my_address, "is_archived": 0, "is_filtered": 0,
                "successful_query": 1,
            })
        self.insert("chat_handle_join", {"chat_id": chat_id, "handle_id": handle_id},
                    verb="INSERT OR IGNORE")
        return chat_id

    def join_message(self, chat_id, message_id, date):
        self.insert("chat_message_join",
                    {"chat_id": chat_id, "message_id": message_id, "message_date": date})


def accounts(home):
    state = read_state(home)
    return state.get("me", DEFAULT_ME), state.get("smsNumber", DEFAULT_SMS_NUMBER)


def account_for(service, me, sms_number):
    """(account column value, my address) for a service."""
    if service == "iMessage":
        return "E:" + me, me
    return "P:" + sms_number, sms_number


def write_message(home, service, address, text, from_me, ghost=False):
    """Insert one message (plus handle, chat, joins) in one IMMEDIATE transaction; return ROWID."""
    me, sms_number = accounts(home)
    con = connect(home)
    try:
        db = ChatDb(con)
        con.execute("BEGIN IMMEDIATE")
        try:
            date = now_ns()
            if ghost:  # macOS 26: empty, unjoined SMS row that is never delivered
                service = "SMS"
            account, my_address = account_for(service, me, sms_number)
            handle_id = db.ensure_handle(address, service)
            values = {
                "guid": new_guid(), "text": "" if ghost else None,
                "attributedBody": None if ghost else encode_attributed_body(text),
                "handle_id": handle_id, "service": service, "account": account,
                "account_guid": account_guid(account), "version": 10, "type": 0,
                "error": 0, "is_from_me": 1 if from_me else 0,
                "is_sent": 0, "is_finished": 0 if from_me else 1,
                "is_delivered": 0 if from_me else 1, "is_read": 0,
                "date": date, "date_read": 0, "date_delivered": 0,
                "item_type": 0, "associated_message_type": 0, "cache_roomnames": None,
                "destination_caller_id": my_address, "part_count": 1,
            }
            rowid = db.insert("message", values)
            if not ghost:
                chat_id = db.ensure_chat(address, service, handle_id, account, my_address)
                db.join_message(chat_id, rowid, date)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return rowid
    finally:
        con.close()


# ----------------------------------------------------------------------------- background updater

def start_timeline(home, rowid, service, recipient, control):
    """Fork a detached child that later marks the message sent/failed, delivered and read."""
    confirm_ms = ctl_number(control, "confirmDelayMs", 300)
    deliver_ms = ctl_number(control, "deliverDelayMs", 300)
    read_ms = ctl_number(control, "readDelayMs")
    read_by = ctl_list(control, "readBy")
    not_imessage = service == "iMessage" and recipient in (ctl_list(control, "nonImessage") or [])
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        return
    # Child: own session, no inherited pipes (or the caller would wait for our stdout EOF).
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 65536)
        import time
        time.sleep(confirm_ms / 1000)
        con = connect(home)
        db = ChatDb(con)
        if not_imessage:
            db.update_message(rowid, {"error": 22, "is_finished": 1})
            return
        db.update_message(rowid, {"is_sent": 1, "is_finished": 1})
        time.sleep(deliver_ms / 1000)
        db.update_message(rowid, {"is_delivered": 1, "date_delivered": now_ns()})
        if read_ms is not None and (read_by is None or recipient in read_by):
            time.sleep(read_ms / 1000)
            db.update_message(rowid, {"date_read": now_ns(), "is_read": 1})
        con.close()
    except BaseException:
        try:
            import traceback
            with open(os.path.join(home, "emulator-errors.log"), "a") as f:
                f.write("pid %d, message %s:\n%s\n" % (os.getpid(), rowid, traceback.format_exc()))
        except BaseException:
            pass
    finally:
        os._exit(0)


# ----------------------------------------------------------------------------- scripts

class ScriptError(Exception):
    """An AppleScript execution error: osascript prints it and exits 1."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def error_message(code, args, control):
    template = control.get("failMessage")
    if not isinstance(template, str):
        template = ERROR_MESSAGES.get(
            code, "Messages got an error: An error of type %d has occurred." % code)
    return (template.replace("{recipient}", args[1] if len(args) > 1 else "")
            .replace("{service}", args[0] if args else ""))


def check_injected_failure(home, short_name, args, control, stamp):
    """Raise the control's failWith error if it applies to this call (failOn/failCount)."""
    code = ctl_number(control, "failWith", integer=True)
    if code is None:
        return
    fail_on = ctl_list(control, "failOn")
    if fail_on is not None and short_name not in [str(s).replace(".applescript", "") for s in fail_on]:
        return
    if consume(home, "fail", ctl_number(control, "failCount", integer=True), stamp):
        if short_name == "status" and code == -1728 and "failMessage" not in control:
            raise ScriptError(code, "Messages got an error: Can\u2019t get account 1. Invalid index.")
        raise ScriptError(code, error_message(code, args, control))


def sleep_forever():
    import time
    while True:
        time.sleep(3600)


def maybe_hang(home, stage, control, stamp):
    """Hang (the caller must kill us) when control `hang` names this stage (hangCount)."""
    if control.get("hang") != stage:
        return
    if not consume(home, "hang", ctl_number(control, "hangCount", integer=True), stamp):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    limit = ctl_number(control, "hangMaxMs")
    if limit is None:
        sleep_forever()
    import time
    time.sleep(limit / 1000)  # like osascript's AppleEvent timeout
    raise ScriptError(-1712, ERROR_MESSAGES[-1712])


def script_send(home, args, control, stamp):
    if control.get("recordOnly") is True:
        return 0
    check_injected_failure(home, "send", args, control, stamp)
    # The checks send.applescript itself makes, with its error texts.
    if len(args) != 3:
        raise ScriptError(-1700, "usage: send.applescript <iMessage|SMS|RCS> <recipient> <text>")
    service, recipient, text = args
    if service not in SERVICES:
        raise ScriptError(-1700, "Unknown service type " + service)
    if service == "SMS" and control.get("smsAccount") is False:
        raise ScriptError(-2753, ERROR_MESSAGES[-2753])
    if service == "iMessage" and control.get("imessageSignedIn") is False:
        raise ScriptError(-1728, "Messages got an error: Can\u2019t get account 1 whose service type = iMessage. Invalid index.")
    maybe_hang(home, "before_send", control, stamp)
    err("LINEAGENT:SENDING\n")
    delay = ctl_number(control, "sendDelayMs", 0)
    if delay:
        import time
        time.sleep(delay / 1000)
    ghost = control.get("ghost") is True
    rowid = write_message(home, service, clean(recipient), os.fsencode(text), True, ghost=ghost)
    if not ghost:
        start_timeline(home, rowid, service, recipient, control)
    maybe_hang(home, "after_send", control, stamp)
    return 0


def script_status(home, args, control, stamp):
    check_injected_failure(home, "status", args, control, stamp)
    maybe_hang(home, "status", control, stamp)
    me, sms_number = accounts(home)
    signed_in = control.get("imessageSignedIn") is not False
    lines = ["iMessage\tE:%s\t%s\t%s" % (me, "true" if signed_in else "false",
                                          "connected" if signed_in else "disconnected")]
    if control.get("smsAccount") is not False:
        lines.append("SMS\tP:%s\ttrue\tconnected" % sms_number)
    out("\n".join(lines) + "\n")
    return 0


def script_restart(home, args, control, stamp):
    return 0


SCRIPTS = {
    "send.applescript": script_send,
    "status.applescript": script_status,
    "restart-messages.applescript": script_restart,
}


def run_script(script_path, args):
    home = emulator_home()
    log_call(home, script_path, args)
    control, stamp = load_control(home)
    if control.get("requireScriptFile") is True and not os.path.isfile(script_path):
        err("osascript: %s: No such file or directory (-43)\n" % script_path)
        return 1
    handler = SCRIPTS.get(os.path.basename(script_path))
    try:
        if handler is None:
            raise ScriptError(-1728, "Messages got an error: Can\u2019t get script \u201c%s\u201d."
                              % os.path.basename(script_path))
        return handler(home, args, control, stamp)
    except ScriptError as e:
        err("%s: execution error: %s (%d)\n" % (script_path, e.message, e.code))
        return 1


# ----------------------------------------------------------------------------- admin commands

def cmd_init(args):
    import argparse
    parser = argparse.ArgumentParser(prog="messages_emulator.py init",
                                     description="Create $MESSAGES_EMULATOR_HOME/chat.db from Apple's schema.")
    parser.add_argument("--schema", choices=("15", "26"), required=True)
    parser.add_argument("--me", default=DEFAULT_ME)
    parser.add_argument("--sms-number", default=DEFAULT_SMS_NUMBER)
    parser.add_argument("--force", action="store_true", help="delete and recreate an existing chat.db")
    parser.add_argument("--schema-file", help="override the schema SQL file")
    opts = parser.parse_args(args)
    home = emulator_home()
    db_path = os.path.join(home, "chat.db")
    wanted = {"schema": opts.schema, "me": opts.me, "smsNumber": opts.sms_number}
    if os.path.exists(db_path) and not opts.force:
        state = read_state(home)
        if all(state.get(k) == v for k, v in wanted.items()):
            err("messages_emulator: %s already initialised (schema %s)\n" % (db_path, opts.schema))
            return 0
        raise EmulatorError("%s exists with other settings (%s); use --force to recreate it"
                            % (db_path, {k: state.get(k) for k in wanted}))
    schema_file = opts.schema_file or os.path.join(
        os.path.dirname(os.path.realpath(__file__)), "..", "fixtures", "chatdb",
        "schema-macos%s.sql" % opts.schema)
    with open(schema_file, encoding="utf-8") as f:
        schema_sql = f.read()
    # Build under a temporary name, then rename: readers never see a half-made database.
    tmp_path = "%s.init.%d" % (db_path, os.getpid())
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(tmp_path + suffix):
            os.remove(tmp_path + suffix)
    con = connect(home, create=True, path=tmp_path)
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise EmulatorError("could not switch %s to WAL (got %s)" % (tmp_path, mode))
    con.executescript(schema_sql)
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'index_state_metrics'").fetchone():
        con.execute("INSERT OR IGNORE INTO index_state_metrics (id) VALUES (1)")
    con.close()
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    os.replace(tmp_path, db_path)

    def save(state):
        state.update(wanted)
        state["counters"] = {}

    update_state(home, save)
    out(db_path + "\n")
    return 0


def cmd_incoming(args):
    """incoming <handle> <text> [--service iMessage|SMS|RCS]: an inbound reply; prints ROWID.

    `--service X` is recognised only as the last (or first) two arguments, so any text,
    even one starting with dashes, is taken literally."""
    service, positional = "iMessage", list(args)
    if len(positional) >= 2 and positional[-2] == "--service":
        service, positional = positional[-1], positional[:-2]
    elif len(positional) >= 2 and positional[0] == "--service":
        service, positional = positional[1], positional[2:]
    if len(positional) != 2 or service not in SERVICES:
        raise EmulatorError("usage: incoming <handle> <text> [--service iMessage|SMS|RCS]")
    home = emulator_home()
    rowid = write_message(home, service, clean(positional[0]), os.fsencode(positional[1]), False)
    out("%d\n" % rowid)
    return 0


def cmd_dump(args):
    """dump: one JSON line per message row (debugging and tests)."""
    import json
    home = emulator_home()
    con = connect(home)
    try:
        rows = con.execute(
            "SELECT m.ROWID, m.guid, h.id, m.service, m.is_from_me, m.error, m.is_sent,"
            " m.is_finished, m.is_delivered, m.date, m.date_read, m.date_delivered, m.text,"
            " m.attributedBody, (SELECT c.guid FROM chat_message_join j JOIN chat c"
            " ON c.ROWID = j.chat_id WHERE j.message_id = m.ROWID LIMIT 1)"
            " FROM message m LEFT JOIN handle h ON h.ROWID = m.handle_id ORDER BY m.ROWID").fetchall()
    finally:
        con.close()
    keys = ("ROWID", "guid", "handle", "service", "is_from_me", "error", "is_sent", "is_finished",
            "is_delivered", "date", "date_read", "date_delivered")
    for row in rows:
        item = dict(zip(keys, row[:12]))
        item["text"] = row[12] if row[12] is not None else decode_attributed_body(row[13])
        item["chat"] = row[14]
        out(json.dumps(item) + "\n")
    return 0


def cmd_decode(args):
    """decode <blob file>: print the text of an attributedBody blob; exit 1 if it has none."""
    if len(args) != 1:
        raise EmulatorError("usage: decode <blob file>")
    with open(args[0], "rb") as f:
        text = decode_attributed_body(f.read())
    if text is None:
        err("no text\n")
        return 1
    out(text + "\n")
    return 0


def cmd_control(args):
    """control '<json object>' | control -  : replace control.json atomically."""
    import json
    if len(args) != 1:
        raise EmulatorError("usage: control '<json object>' (or - to read stdin)")
    data = sys.stdin.read() if args[0] == "-" else args[0]
    control = json.loads(data)
    if not isinstance(control, dict):
        raise EmulatorError("control must be a JSON object")
    home = emulator_home()
    write_atomic(os.path.join(home, "control.json"), json.dumps(control, indent=1).encode())
    return 0


def cmd_reset(args):
    """reset: forget failCount/hangCount counters."""
    home = emulator_home()
    update_state(home, lambda state: state.__setitem__("counters", {}))
    return 0


def cmd_calls(args):
    """calls: calls.ndjson with argv decoded (UTF-8, invalid bytes replaced)."""
    import base64
    import json
    home = emulator_home()
    try:
        with open(os.path.join(home, "calls.ndjson"), "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in lines:
        rec = json.loads(line)
        rec["argv"] = [base64.b64decode(a).decode("utf-8", "replace") for a in rec.pop("argv_b64")]
        out(json.dumps(rec, ensure_ascii=False) + "\n")
    return 0


COMMANDS = {
    "init": cmd_init, "incoming": cmd_incoming, "dump": cmd_dump, "decode": cmd_decode,
    "control": cmd_control, "reset": cmd_reset, "calls": cmd_calls,
}

USAGE = """usage:
  messages_emulator.py <script file> [args...]   (as osascript; send/status/restart-messages.applescript)
  messages_emulator.py init --schema 15|26 [--me ADDR] [--sms-number +1...] [--force]
  messages_emulator.py incoming <handle> <text> [--service iMessage|SMS|RCS]
  messages_emulator.py dump | calls | reset | control '<json>' | decode <blob file>
State directory: $MESSAGES_EMULATOR_HOME
"""


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        err(USAGE)
        return 2
    try:
        command = COMMANDS.get(argv[1])
        if command:
            return command(argv[2:])
        return run_script(argv[1], argv[2:])
    except EmulatorError as e:
        err("messages_emulator: %s\n" % e)
        return 2
    except Exception:  # an emulator bug or a broken chat.db: never look like an AppleScript error
        import traceback
        err("messages_emulator: internal error\n" + traceback.format_exc())
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
