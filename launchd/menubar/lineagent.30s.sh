#!/usr/bin/env bash
# <xbar.title>LineAgent</xbar.title>
# <xbar.version>v0.1.0</xbar.version>
# <xbar.author>LineAgent</xbar.author>
# <xbar.desc>The local LineAgent: lines and their channels, queue, last error; pause and resume lines.</xbar.desc>
# <xbar.dependencies>curl</xbar.dependencies>
# <xbar.var>string(LINEAGENT_PREFIX=""): LineAgent install directory (install.sh --prefix). Empty: the installed LaunchAgent's, else ~/Library/Application Support/LineAgent</xbar.var>
# <xbar.var>string(LINEAGENT_DATA_DIR=""): data directory with the api-token (install.sh --data-dir). Empty: the installed LaunchAgent's, else the install directory</xbar.var>
# <xbar.var>string(LINEAGENT_URL=""): the agent's URL. Empty: http://127.0.0.1:5117</xbar.var>
# <xbar.var>string(LINEAGENT_LABEL=""): launchd label (install.sh --label). Empty: com.lineagent.agent</xbar.var>
# <swiftbar.environment>[LINEAGENT_PREFIX=, LINEAGENT_DATA_DIR=, LINEAGENT_URL=, LINEAGENT_LABEL=]</swiftbar.environment>
# <swiftbar.hideRunInTerminal>true</swiftbar.hideRunInTerminal>
# <swiftbar.hideDisablePlugin>false</swiftbar.hideDisablePlugin>
#
# xbar / SwiftBar plugin (refreshes every 30 s, from the file name). Install by linking it into the
# plugin folder: ln -s "$PWD/launchd/menubar/lineagent.30s.sh" <plugin folder>/
#
#   lineagent.30s.sh                  print the menu (what xbar/SwiftBar run)
#   lineagent.30s.sh pause LINE_ID    PATCH /api/lines/LINE_ID {"active":false}; exit 0 on 2xx, else 1
#   lineagent.30s.sh resume LINE_ID   PATCH /api/lines/LINE_ID {"active":true}
#   lineagent.30s.sh start            start the LaunchAgent: kickstart it when launchd has it loaded,
#                                     else enable + bootstrap ~/Library/LaunchAgents/LABEL.plist
#   lineagent.30s.sh console          open the web console in the browser, signed in (lineagent open)
#
# Environment (all optional; xbar and SwiftBar set the first four from the plugin's settings, above):
#   LINEAGENT_PREFIX    install directory (install.sh --prefix): the binary is PREFIX/bin/lineagent. Default:
#                       the LaunchAgent plist's LINEAGENT__Agent__InstallPrefix, else
#                       ~/Library/Application Support/LineAgent (elsewhere ${XDG_DATA_HOME:-~/.local/share}/lineagent)
#   LINEAGENT_DATA_DIR  data directory (install.sh --data-dir), for the api-token. Default: the plist's
#                       LINEAGENT__Agent__DataDir, else the install directory
#   LINEAGENT_URL       agent URL (default http://127.0.0.1:5117)
#   LINEAGENT_LABEL     launchd label, for the start action (default com.lineagent.agent)
#   LINEAGENT_TOKEN     API token (default: read from DATA_DIR/api-token)
#   LINEAGENT_LOG       log file for "Open log in Console" (default ~/Library/Logs/LineAgent/lineagent.log)
#   LINEAGENT_BIN       the lineagent binary used to read JSON (default PREFIX/bin/lineagent)
#   LINEAGENT_JSON      force the JSON reader: lineagent (LINEAGENT_BIN menubar-records), jxa
#                       (osascript -l JavaScript) or python (python3)
#
# Written for the bash 3.2 that macOS ships: no associative arrays, no mapfile.
set -uo pipefail

# xbar/SwiftBar start plugins with a minimal PATH.
export PATH="$PATH:/usr/bin:/bin:/usr/sbin:/sbin"

# A setting left empty means the default; so does "" (what a host may pass for an empty default).
setting() {
  case "${1:-}" in
    '""' | "''") ;;
    *) printf '%s' "${1:-}" ;;
  esac
}

os=$(uname -s)
base_url=$(setting "${LINEAGENT_URL:-}")
base_url=${base_url:-http://127.0.0.1:5117}
base_url=${base_url%/}
label=$(setting "${LINEAGENT_LABEL:-}")
label=${label:-com.lineagent.agent}
log_file=${LINEAGENT_LOG:-$HOME/Library/Logs/LineAgent/lineagent.log}
plist="$HOME/Library/LaunchAgents/$label.plist"
self_path=${SWIFTBAR_PLUGIN_PATH:-$0}
self="$(cd "$(dirname "$self_path")" && pwd)/$(basename "$self_path")"
US=$'\x1f'   # field separator of the records the JSON reader prints

# --- where LineAgent is installed ----------------------------------------------------------------

# A value from the installed LaunchAgent's EnvironmentVariables (install.sh writes them); macOS only.
plist_env() {
  [ "$os" = Darwin ] && [ -r "$plist" ] || return 1
  /usr/bin/plutil -extract "EnvironmentVariables.$1" raw -o - "$plist" 2>/dev/null
}

prefix=$(setting "${LINEAGENT_PREFIX:-}")
[ -n "$prefix" ] || prefix=$(plist_env LINEAGENT__Agent__InstallPrefix)
if [ -z "$prefix" ]; then
  if [ "$os" = Darwin ]; then
    prefix="$HOME/Library/Application Support/LineAgent"
  else
    prefix="${XDG_DATA_HOME:-$HOME/.local/share}/lineagent"
  fi
fi
prefix=${prefix%/}
data_dir=$(setting "${LINEAGENT_DATA_DIR:-}")
[ -n "$data_dir" ] || data_dir=$(plist_env LINEAGENT__Agent__DataDir)
[ -n "$data_dir" ] || data_dir=$prefix
data_dir=${data_dir%/}
agent_bin=$(setting "${LINEAGENT_BIN:-}")
agent_bin=${agent_bin:-$prefix/bin/lineagent}

# --- token ---------------------------------------------------------------------------------------

token_file="$data_dir/api-token"
token=${LINEAGENT_TOKEN:-}
token_source="LINEAGENT_TOKEN"
if [ -z "$token" ]; then
  token_source=$token_file
  if [ -r "$token_file" ]; then
    token=$(tr -d ' \t\r\n' <"$token_file")
  fi
fi

# --- HTTP ----------------------------------------------------------------------------------------

# curl reads the Authorization header from its config on stdin, so the token is not in `ps` output.
curl_config() {
  if [ -n "$token" ]; then
    printf 'header = "Authorization: Bearer %s"\n' "$(printf '%s' "$token" | sed 's/[\\"]/\\&/g')"
  fi
}

# http METHOD PATH [JSON]: sets http_rc (curl's exit code), http_code and http_body.
http() {
  local out
  local -a args=(-sS --max-time 5 -X "$1" -w '\n%{http_code}' -K -)
  if [ "$#" -ge 3 ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$3")
  fi
  out=$(curl_config | curl "${args[@]}" "$base_url$2" 2>/dev/null)
  http_rc=$?
  http_code=${out##*$'\n'}
  http_body=${out%$'\n'*}
  [ "$http_rc" -eq 0 ] || http_code=000
}

# Percent-encodes one path segment.
urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# --- JSON ----------------------------------------------------------------------------------------
# A small reader turns the JSON into records, one per line, fields separated by \x1f, strings
# already stripped of control characters and shortened; all formatting happens in bash below.
# Readers, in order: the installed agent (`lineagent menubar-records`, the same records as the Python
# reader below), JavaScript for Automation on macOS, python3 elsewhere.
#   A version uptimeSeconds dryRun dryRunOutbox      C scheduled queued sending sentToday failedToday
#   L id name active                                 N nextScheduledAt (epoch seconds, empty = none)
#   H type channel state detail                      E code message (only when lastError is set)
#   U sentToday maxPerDay sentLastHour maxPerHour windowOpen windowOpensAt(epoch) pacingEnabled (empty from an older agent)
#   P detail-or-title of an RFC 7807 problem (mode "problem")      X why the JSON could not be read

python_reader() {
  cat <<'PY'
import json, re, sys, datetime

def clean(v, n=200):
    if v is None:
        return ''
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else str(v)
    s = re.sub(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]', ' ', str(v)).strip()
    return s if len(s) <= n else s[:n - 1] + '\u2026'

def epoch(v):
    m = re.match(r'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?$', v or '') if isinstance(v, str) else None
    if not m:
        return ''
    t = datetime.datetime(*[int(x) for x in m.groups()[:6]], tzinfo=datetime.timezone.utc).timestamp()
    z = m.group(7) or 'Z'
    if z != 'Z':
        z2 = z[1:].replace(':', '')
        t -= (-1 if z[0] == '-' else 1) * (int(z2[:2]) * 3600 + int(z2[2:]) * 60)
    return str(int(t))

def obj(v):
    return v if isinstance(v, dict) else {}

def arr(v):
    return v if isinstance(v, list) else []

out = []
def rec(*fields):
    out.append('\x1f'.join(fields))

try:
    d = json.loads(sys.stdin.buffer.read().decode('utf-8'))
    if not isinstance(d, dict):
        raise ValueError('not a JSON object')
except Exception as e:
    rec('X', clean(e, 120))
    d = None

if d is not None and sys.argv[1] == 'problem':
    rec('P', clean(d.get('detail') or d.get('title'), 160))
elif d is not None:
    rec('A', clean(d.get('version'), 40), clean(d.get('uptimeSeconds')), clean(d.get('dryRun')), clean(d.get('dryRunOutbox')))
    for l in arr(d.get('lines')):
        l = obj(l)
        rec('L', clean(l.get('id'), 200), clean(l.get('name'), 60), clean(l.get('active')))
        for h in arr(l.get('health')):
            h = obj(h)
            rec('H', clean(h.get('type'), 40), clean(h.get('channel'), 40), clean(h.get('state'), 40), clean(h.get('detail'), 100))
        u = l.get('usage')
        if isinstance(u, dict):
            rec('U', clean(u.get('sentToday')), clean(u.get('maxPerDay')), clean(u.get('sentLastHour')), clean(u.get('maxPerHour')),
                clean(u.get('windowOpen')), epoch(u.get('windowOpensAt')), clean(u.get('pacingEnabled')))
    c = obj(d.get('counts'))
    rec('C', *[clean(c.get(k)) for k in ('scheduled', 'queued', 'sending', 'sentToday', 'failedToday')])
    rec('N', epoch(d.get('nextScheduledAt')))
    e = d.get('lastError')
    if isinstance(e, dict):
        rec('E', clean(e.get('code'), 40), clean(e.get('message'), 80))

sys.stdout.buffer.write(('\n'.join(out) + '\n').encode('utf-8'))
PY
}

jxa_reader() {
  cat <<'JS'
function clean(v, n) {
  n = n || 200;
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return String(v);
  var s = Array.from(String(v).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').trim());
  return s.length <= n ? s.join('') : s.slice(0, n - 1).join('') + '\u2026';
}
function epoch(v) {
  if (typeof v !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?$/.test(v)) return '';
  var s = v.replace(/(\.\d{3})\d+/, '$1');
  if (!/(Z|[+-]\d\d:?\d\d)$/.test(s)) s += 'Z';
  var t = Date.parse(s);
  return isNaN(t) ? '' : String(Math.floor(t / 1000));
}
function obj(v) { return v && typeof v === 'object' && !Array.isArray(v) ? v : {}; }
function arr(v) { return Array.isArray(v) ? v : []; }
function run(argv) {
  var out = [];
  function rec() { out.push(Array.prototype.slice.call(arguments).join('\u001f')); }
  var d = null;
  try {
    d = JSON.parse(argv[1]);
    if (!d || typeof d !== 'object' || Array.isArray(d)) throw new Error('not a JSON object');
  } catch (e) { rec('X', clean(String(e), 120)); d = null; }
  if (d && argv[0] === 'problem') {
    rec('P', clean(d.detail || d.title, 160));
  } else if (d) {
    rec('A', clean(d.version, 40), clean(d.uptimeSeconds), clean(d.dryRun), clean(d.dryRunOutbox));
    arr(d.lines).forEach(function (l) {
      l = obj(l);
      rec('L', clean(l.id, 200), clean(l.name, 60), clean(l.active));
      arr(l.health).forEach(function (h) {
        h = obj(h);
        rec('H', clean(h.type, 40), clean(h.channel, 40), clean(h.state, 40), clean(h.detail, 100));
      });
      var u = l.usage;
      if (u && typeof u === 'object')
        rec('U', clean(u.sentToday), clean(u.maxPerDay), clean(u.sentLastHour), clean(u.maxPerHour), clean(u.windowOpen), epoch(u.windowOpensAt),
          clean(u.pacingEnabled));
    });
    var c = obj(d.counts);
    rec('C', clean(c.scheduled), clean(c.queued), clean(c.sending), clean(c.sentToday), clean(c.failedToday));
    rec('N', epoch(d.nextScheduledAt));
    if (d.lastError && typeof d.lastError === 'object') rec('E', clean(d.lastError.code, 40), clean(d.lastError.message, 80));
  }
  return out.join('\n');
}
JS
}

# Does $agent_bin have `menubar-records`? A build from before it would take the words as settings and
# start an agent instead, so ask its help once per binary (remembered until the binary changes).
agent_reads_json() {
  [ -f "$agent_bin" ] && [ -x "$agent_bin" ] || return 1
  local cache="${TMPDIR:-/tmp}"
  cache="${cache%/}/lineagent-menubar-$UID.reader"
  if [ -f "$cache" ] && ! [ "$agent_bin" -nt "$cache" ]; then
    case "$(cat "$cache" 2>/dev/null)" in
      "yes $agent_bin") return 0 ;;
      "no $agent_bin") return 1 ;;
    esac
  fi
  if "$agent_bin" menubar-records --help </dev/null 2>/dev/null | grep -q 'menubar-records'; then
    printf 'yes %s' "$agent_bin" >"$cache" 2>/dev/null
    return 0
  fi
  printf 'no %s' "$agent_bin" >"$cache" 2>/dev/null
  return 1
}

# The installed agent when it can; else JavaScript for Automation on a Mac (always there; there
# /usr/bin/python3 is only a stub that opens an "install the command line developer tools" dialog
# unless they are installed); else python3 as a last resort.
json_reader() {
  case "${LINEAGENT_JSON:-}" in
    lineagent|python|jxa) printf '%s' "$LINEAGENT_JSON"; return ;;
  esac
  if agent_reads_json; then
    printf lineagent
  elif [ "$os" = Darwin ]; then
    printf jxa
  elif command -v python3 >/dev/null 2>&1; then
    printf python
  elif command -v osascript >/dev/null 2>&1; then
    printf jxa
  else
    printf none
  fi
}

# read_json MODE JSON: prints the records.
read_json() {
  case "$(json_reader)" in
    lineagent)
      printf '%s' "$2" | "$agent_bin" menubar-records "$1" 2>/dev/null ||
        printf 'X%sthe JSON reader (lineagent menubar-records) failed\n' "$US"
      ;;
    python)
      local py=python3
      [ "$os" != Darwin ] || py=/usr/bin/python3
      printf '%s' "$2" | "$py" -c "$(python_reader)" "$1" 2>/dev/null ||
        printf 'X%sthe JSON reader (python3) failed\n' "$US"
      ;;
    jxa)
      osascript -l JavaScript -e "$(jxa_reader)" "$1" "$2" 2>/dev/null ||
        printf 'X%sthe JSON reader (osascript) failed\n' "$US"
      ;;
    *)
      printf 'X%sno JSON reader: neither %s nor osascript nor python3 is available\n' "$US" "$agent_bin"
      ;;
  esac
}

# --- output helpers ------------------------------------------------------------------------------

# Text for a menu line: a '|' from data would start xbar parameters, a leading '-' a submenu.
txt() {
  local s=${1//|/¦}
  case "$s" in -*) s="‐${s#-}" ;; esac
  printf '%s' "$s"
}

# Value of an xbar parameter, quoted when it has spaces; fails when it cannot be written at all.
param() {
  case "$1" in
    *\"*|*\|*|*$'\n'*|"") return 1 ;;
    *[[:space:]=]*) printf '"%s"' "$1" ;;
    *) printf '%s' "$1" ;;
  esac
}

local_time() {
  # With the year when it is not this one: in December "Tue 01 Jan 10:00" of a later year reads as next month.
  local format='+%a %d %b %H:%M' year
  year=$(date -r "$1" '+%Y' 2>/dev/null || date -d "@$1" '+%Y' 2>/dev/null)
  if [ -n "$year" ] && [ "$year" != "$(date '+%Y')" ]; then format='+%a %d %b %Y %H:%M'; fi
  date -r "$1" "$format" 2>/dev/null || date -d "@$1" "$format" 2>/dev/null || printf '%s' "$1"
}

# A count for a menu line: digits, else "?" (a count is printed without txt(): anything else in it, a '|' or a line break
# SwiftBar splits on, would make menu items of its own: probe).
num() { case "$1" in ''|*[!0-9]*) printf '?' ;; *) printf '%s' "$1" ;; esac; }

uptime_text() {
  local s=${1:-0}
  case "$s" in ''|*[!0-9]*) s=0 ;; esac
  printf '%dh %dm' $((s / 3600)) $((s % 3600 / 60))
}

footer() {
  local log self_param
  echo "---"
  if self_param=$(param "$self"); then
    echo "Open console | bash=$self_param param1=console terminal=false"
  fi
  if log=$(param "$log_file"); then
    echo "Open log in Console | bash=/usr/bin/open param1=-a param2=Console param3=$log terminal=false"
  fi
  echo "Open API docs | href=$base_url/openapi/v1.json"
  echo "Refresh | refresh=true"
}

# Bar and menu when there is no usable answer: how to start the agent, nothing that looks like data.
not_running() {
  local service="gui/${UID}/$label" self_param
  echo "○ LineAgent"
  echo "---"
  echo "Agent not running"
  txt "$1"; echo
  if self_param=$(param "$self"); then
    echo "Start it | bash=$self_param param1=start terminal=false refresh=true"
  else
    echo "Start it: launchctl kickstart -k $service | bash=/bin/launchctl param1=kickstart param2=-k param3=$service terminal=false refresh=true"
  fi
  echo "Not installed? Run launchd/install.sh in the LineAgent repository"
  echo "---"
  echo "Refresh | refresh=true"
}

# Something answered (or took the connection and did not answer in time), so an agent may well be running: no "Start
# it", whose kickstart -k would kill a running agent mid-send (probe: a 503, a slow answer or a body the reader could
# not read all said "Agent not running" and offered it).
not_answering() {   # HEADLINE DETAIL
  echo "◐ LineAgent"
  echo "---"
  echo "$1 | color=red"
  txt "$2"; echo
  echo "It may be busy or stopping: look again in a minute, or run: lineagent doctor"
  echo "---"
  echo "Refresh | refresh=true"
}

# --- pause / resume ------------------------------------------------------------------------------

set_active() {
  local verb=$1 id=$2 body done_word rec reason=""
  if [ "$verb" = pause ]; then body='{"active":false}'; done_word=paused; else body='{"active":true}'; done_word=resumed; fi
  http PATCH "/api/lines/$(urlencode "$id")" "$body"
  case "$http_code" in
    2??)
      echo "LineAgent: line $id $done_word"
      return 0
      ;;
    000)
      echo "LineAgent: could not $verb line $id: the agent at $base_url is not answering"
      return 1
      ;;
  esac
  if [ -n "$http_body" ]; then
    rec=$(read_json problem "$http_body")
    case "$rec" in "P$US"?*) reason=": ${rec#P"$US"}" ;; esac
  fi
  [ "$http_code" != 401 ] || reason=": API token missing or rejected (from $token_source)"
  echo "LineAgent: could not $verb line $id: HTTP $http_code$reason"
  return 1
}

# --- start ---------------------------------------------------------------------------------------

# kickstart only works on a service launchd has loaded; one that was booted out (or never loaded in
# this session) has to be enabled and bootstrapped from its plist.
start_agent() {
  local domain="gui/$UID"
  local service="$domain/$label"
  if launchctl print "$service" >/dev/null 2>&1; then
    echo "LineAgent: restarting $service"
    launchctl kickstart -k "$service"
    return
  fi
  if [ ! -f "$plist" ]; then
    echo "LineAgent: $plist does not exist: install it with launchd/install.sh"
    return 1
  fi
  echo "LineAgent: loading $service from $plist"
  launchctl enable "$service" || return
  if ! launchctl bootstrap "$domain" "$plist"; then
    echo "LineAgent: launchctl bootstrap failed: it needs your GUI login session, and LineAgent allowed under"
    echo "System Settings > General > Login Items > Allow in the Background (lineagent doctor checks both)"
    return 1
  fi
}

# --- console -------------------------------------------------------------------------------------

# `lineagent open` asks the agent for a one-time link and opens the browser. A build from before `open`
# would take the word as a setting and start a second agent, so its help is asked first.
open_console() {
  if ! { [ -f "$agent_bin" ] && [ -x "$agent_bin" ]; }; then
    echo "LineAgent: $agent_bin not found: set LINEAGENT_PREFIX or LINEAGENT_BIN"
    return 1
  fi
  if ! "$agent_bin" open --help </dev/null 2>/dev/null | grep -q -- '--print-url'; then
    echo "LineAgent: $agent_bin has no console (it is older than \`lineagent open\`): update LineAgent"
    return 1
  fi
  if [ -n "${LINEAGENT_TOKEN:-}" ]; then
    LINEAGENT__Api__Token=$token "$agent_bin" open --url "$base_url" --data-dir "$data_dir" </dev/null
  else
    "$agent_bin" open --url "$base_url" --data-dir "$data_dir" </dev/null
  fi
}

if [ "$#" -gt 0 ]; then
  case "$1" in
    console)
      if [ "$#" -ne 1 ]; then
        echo "usage: $(basename "$0") console" >&2
        exit 2
      fi
      open_console
      exit $?
      ;;
    start)
      if [ "$#" -ne 1 ]; then
        echo "usage: $(basename "$0") start" >&2
        exit 2
      fi
      start_agent
      exit $?
      ;;
    pause|resume)
      if [ "$#" -ne 2 ] || [ -z "$2" ]; then
        echo "usage: $(basename "$0") $1 LINE_ID" >&2
        exit 2
      fi
      set_active "$1" "$2"
      exit $?
      ;;
    *)
      echo "usage: $(basename "$0") [pause LINE_ID | resume LINE_ID | start | console]" >&2
      exit 2
      ;;
  esac
fi

# --- menu ----------------------------------------------------------------------------------------

http GET /api/status
case "$http_code" in
  200) ;;
  000)
    # Something listens but gave no usable answer: curl 28 (no answer within --max-time), 52 (an empty reply), 56 (the
    # connection was reset: an agent stopping), 18 (the answer was cut short). Only a refused connection is "not running".
    if [ "$http_rc" -eq 28 ]; then
      not_answering "Agent not answering" "$base_url/api/status did not answer within 5 s"
    elif [ "$http_rc" -eq 52 ] || [ "$http_rc" -eq 56 ] || [ "$http_rc" -eq 18 ]; then
      not_answering "Agent not answering normally" "$base_url/api/status broke off its answer (curl error $http_rc): stopping or restarting?"
    else
      not_running "Nothing answers at $base_url"
    fi
    exit 0
    ;;
  401)
    echo "○ token?"
    echo "---"
    if [ -z "$token" ]; then
      txt "No API token: $token_source is missing or unreadable"; echo
      echo "It appears when the agent first starts; or set LINEAGENT_TOKEN / LINEAGENT_DATA_DIR"
    else
      echo "The agent rejected the API token (HTTP 401)"
      txt "Token from: $token_source"; echo
      echo "Was Api:Token changed? Compare with: lineagent token"
    fi
    footer
    exit 0
    ;;
  *)
    not_answering "Agent not answering normally" "$base_url/api/status answered HTTP $http_code"
    exit 0
    ;;
esac

records=$(read_json status "$http_body")
case "$records" in
  "X$US"*)
    not_answering "Cannot read the agent's answer" "$base_url/api/status: ${records#X"$US"}"
    exit 0
    ;;
esac

version="" uptime="" dry_run="" outbox=""
scheduled=0 queued=0 sent_today=0 failed_today=0 next="" err_code="" err_message="" have_error=0
n_lines=0 n_active=0 trouble=0
cur_active="" cur_ok=0
line_menu=""

pending_action=""

add() { line_menu+="$1"$'\n'; }

# The pause/resume action is the last item of each line's submenu.
flush_action() {
  if [ -n "$pending_action" ]; then add "$pending_action"; fi
  pending_action=""
}

# An active line is fine when one of its channels is ok and no channel it has set up is
# unavailable/degraded; a type with no channel set up (channel "unavailable") is not trouble.
end_line() {
  if [ "$cur_active" = true ] && [ "$cur_ok" -eq 0 ]; then trouble=1; fi
  cur_active=""
  cur_ok=0
}

while IFS="$US" read -r kind f1 f2 f3 f4 f5 f6 f7; do
  case "$kind" in H|U) ;; *) flush_action ;; esac
  case "$kind" in
    A) version=$f1 uptime=$f2 dry_run=$f3 outbox=$f4 ;;
    L)
      end_line
      n_lines=$((n_lines + 1))
      cur_active=$f3
      if [ "$f3" = true ]; then n_active=$((n_active + 1)); state=active; else state=paused; fi
      add "$(txt "${f2:-$f1}: $state")"
      if [ "$f3" = true ]; then action="Pause line" verb=pause; else action="Resume line" verb=resume; fi
      if id_param=$(param "$f1") && self_param=$(param "$self"); then
        pending_action="--$action | bash=$self_param param1=$verb param2=$id_param terminal=false refresh=true"
      else
        pending_action="--(this line's id cannot be passed from the menu: use the API)"
      fi
      ;;
    H)
      [ "$f3" != ok ] || cur_ok=1
      if [ "$cur_active" = true ] && [ "$f2" != unavailable ] && { [ "$f3" = unavailable ] || [ "$f3" = degraded ]; }; then
        trouble=1
      fi
      if [ -n "$f4" ]; then add "--$(txt "$f1: $f3 — $f4")"; else add "--$(txt "$f1: $f3")"; fi
      ;;
    U)
      # An unpaced line has no caps (probe: "4/200" on a line that sends as soon as messages are due).
      if [ "$f7" = false ]; then
        add "--sent today $(num "${f1:-0}"), this hour $(num "${f3:-0}") (not paced)"
      else
        add "--sent today $(num "${f1:-0}")/$(num "$f2"), this hour $(num "${f3:-0}")/$(num "$f4")"
      fi
      if [ "$f5" = false ] && [ "$f7" != false ]; then
        if [ "$(num "$f6")" != "?" ]; then add "--send window closed, opens $(local_time "$f6")"; else add "--send window closed"; fi
      fi
      ;;
    # Empty: the agent could not read them (counts null: a damaged database); "?" rather than a 0 that is not known.
    C) scheduled=$(num "$f1") queued=$(num "$f2") sent_today=$(num "$f4") failed_today=$(num "$f5") ;;
    N) [ "$(num "$f1")" = "?" ] || next=$f1 ;;
    E) have_error=1 err_code=$f1 err_message=$f2 ;;
  esac
done <<EOF
$records
EOF
flush_action
end_line

# A full disk or a recovery not done stops every line: said first, under the title, not only as the last error (probe).
stopped=""
if [ "$have_error" -eq 1 ]; then
  case "$err_code" in
    storage_full) stopped="Disk full: nothing is sent until there is room" ;;
    storage_read_only) stopped="Data dir read-only: nothing is sent until it can be written" ;;
    storage_error) stopped="Storage error: the database or data dir cannot be used (see Last error)" ;;
    recovery_pending) stopped="Not sending yet: the previous run's messages are being settled" ;;
  esac
fi

if [ -n "$stopped" ]; then
  glyph="◐"
elif [ "$n_lines" -gt 0 ] && [ "$n_active" -eq 0 ]; then
  glyph="⏸"
elif [ "$n_lines" -eq 0 ] || [ "$trouble" -eq 1 ]; then
  glyph="◐"
else
  glyph="●"
fi
prefix=""
[ "$dry_run" != true ] || prefix="DRY "

echo "$prefix$glyph $queued"
echo "---"
txt "LineAgent ${version:-?} — up $(uptime_text "$uptime")"; echo
if [ "$dry_run" = true ]; then txt "Dry run: sends go to ${outbox:-the outbox}"; echo; fi
if [ -n "$stopped" ]; then echo "$stopped | color=red"; fi
echo "---"
if [ "$n_lines" -eq 0 ]; then echo "No lines configured"; else printf '%s' "$line_menu"; fi
echo "---"
echo "Scheduled: $scheduled"
echo "Queued: $queued"
echo "Sent today: $sent_today"
echo "Failed today: $failed_today"
if [ -n "$next" ]; then echo "Next send: $(local_time "$next")"; else echo "Next send: none"; fi
if [ "$have_error" -eq 1 ]; then
  txt "Last error: ${err_code:-error} — ${err_message:-(no message)}"; echo
else
  echo "Last error: none"
fi
footer
