#!/usr/bin/env bash
# Builds LineAgent (self-contained) and installs it as a per-user LaunchAgent on macOS.
# Idempotent: running it again rebuilds, rewrites the plist and restarts the agent.
# `--dry-run` prints every command and file instead (works anywhere, needs nothing installed).
set -euo pipefail

usage() {
  cat <<EOF
Usage: launchd/install.sh [options]

Builds src/LineAgent for this Mac and runs it as a LaunchAgent (starts at login, restarted on crash).

Options:
  --rid RID         runtime to publish for: osx-arm64 or osx-x64 (default: from uname -m)
  --prefix DIR      install directory; the binary goes to DIR/bin
                    (default: ~/Library/Application Support/LineAgent)
  --data-dir DIR    data directory: database, api-token, lineagent.json (default: the --prefix directory)
  --label LABEL     launchd label and plist name (default: com.lineagent.agent)
  --dry-run         print the commands and files instead of running/writing them; changes nothing
  -h, --help        show this help

Writes ~/Library/LaunchAgents/LABEL.plist, logs go to ~/Library/Logs/LineAgent/.
Waits for LINEAGENT_URL/healthz (default http://127.0.0.1:5117; set it if lineagent.json changes Api:Urls).
Remove with launchd/uninstall.sh (same --label/--prefix/--data-dir).
EOF
}

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

dry_run=0
rid=""
label="com.lineagent.agent"
app_dir="$HOME/Library/Application Support/LineAgent"
data_dir=""

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --rid) need_value "$@"; rid="$2"; shift 2 ;;
    --rid=*) rid="${1#*=}"; shift ;;
    --prefix) need_value "$@"; app_dir="$2"; shift 2 ;;
    --prefix=*) app_dir="${1#*=}"; shift ;;
    --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
    --data-dir=*) data_dir="${1#*=}"; shift ;;
    --label) need_value "$@"; label="$2"; shift 2 ;;
    --label=*) label="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

finish_paths
for p in "$app_dir" "$data_dir" "$HOME"; do
  case "$p" in *$'\n'*) die "paths must not contain newlines" ;; esac
done

if [ -z "$rid" ]; then
  case "$(uname -m)" in
    arm64|aarch64) rid="osx-arm64" ;;
    x86_64) rid="osx-x64" ;;
    *) die "unknown CPU '$(uname -m)': pass --rid osx-arm64 or --rid osx-x64" ;;
  esac
fi
case "$rid" in
  osx-arm64|osx-x64) ;;
  *) die "--rid must be osx-arm64 or osx-x64 (this installs a macOS LaunchAgent), not '$rid'" ;;
esac

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)
template="$script_dir/com.lineagent.agent.plist.template"
bin_dir="$app_dir/bin"
staging_dir="$app_dir/bin.new"
program="$bin_dir/lineagent"
log_dir="$HOME/Library/Logs/LineAgent"
plist_dir="$HOME/Library/LaunchAgents"
plist="$plist_dir/$label.plist"
domain="gui/$UID"
service="$domain/$label"
agent_url=${LINEAGENT_URL:-http://127.0.0.1:5117}
agent_url=${agent_url%/}
health_url="$agent_url/healthz"

[ -f "$template" ] || die "missing $template"
[ -f "$repo/src/LineAgent/LineAgent.csproj" ] || die "missing $repo/src/LineAgent/LineAgent.csproj"

if [ "$dry_run" -eq 0 ]; then
  if [ "$(uname -s)" != "Darwin" ]; then
    die "this installs a macOS LaunchAgent and this is $(uname -s); nothing was changed.
  See the steps with:   bash launchd/install.sh --dry-run
  Run the agent here:   dotnet run --project src/LineAgent -- run --dry-run"
  fi
  [ "$(id -u)" -ne 0 ] || die "run this as the user who logs in to this Mac, not as root or with sudo (it installs a per-user LaunchAgent)"
  command -v dotnet >/dev/null 2>&1 || die "'dotnet' not found on PATH: install the .NET 10 SDK (https://dot.net) first"
  for tool in launchctl curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
  done
fi


# Paths go into XML (escape &, <, >), then into a sed replacement with '|' as delimiter (escape \, &, |).
# Escaped with sed rather than ${var//...}: '&' and '\' in bash replacements differ between bash 3.2
# (macOS) and 5.2.
xml_escape() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
subst() { printf 's|%s|%s|g' "$1" "$(sed_escape "$(xml_escape "$2")")"; }

render_plist() {
  sed -e "$(subst @@LABEL@@ "$label")" \
      -e "$(subst @@PROGRAM@@ "$program")" \
      -e "$(subst @@DATA_DIR@@ "$data_dir")" \
      -e "$(subst @@LOG_DIR@@ "$log_dir")" \
      -e "$(subst @@HOME@@ "$HOME")" \
      "$template"
}


if [ "$dry_run" -eq 1 ]; then
  echo "# dry run: nothing below is executed or written"
fi
echo "# LineAgent: $rid build -> $bin_dir"
echo "#   data dir: $data_dir"
echo "#   logs:     $log_dir"
echo "#   plist:    $plist (label $label)"

echo "== directories"
if [ "$data_dir" = "$app_dir" ]; then
  run mkdir -p "$app_dir" "$log_dir" "$plist_dir"
else
  run mkdir -p "$app_dir" "$data_dir" "$log_dir" "$plist_dir"
fi
run chmod 700 "$data_dir"

echo "== build (self-contained $rid); the running agent keeps running meanwhile"
run rm -rf "$staging_dir"
run dotnet publish "$repo/src/LineAgent" -c Release -r "$rid" --self-contained true -o "$staging_dir"
if [ "$dry_run" -eq 0 ] && [ ! -x "$staging_dir/lineagent" ]; then
  die "dotnet publish did not produce $staging_dir/lineagent"
fi

echo "== plist"
plist_text=$(render_plist)
case "$plist_text" in *@@*) die "unreplaced placeholder in the rendered plist" ;; esac
if [ "$dry_run" -eq 1 ]; then
  echo "# would write $plist (mode 0644):"
  printf '%s\n' "$plist_text" | sed 's/^/    /'
  echo "+ plutil -lint $(printf '%q' "$plist")   # only where plutil exists"
else
  tmp=$(mktemp "$plist_dir/.$label.plist.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  printf '%s\n' "$plist_text" >"$tmp"
  chmod 0644 "$tmp"
  if command -v plutil >/dev/null 2>&1; then
    run plutil -lint "$tmp" || die "the rendered plist is not valid (kept the previous one)"
  fi
  echo "# writing $plist"
  mv -f "$tmp" "$plist"
  trap - EXIT
fi

echo "== (re)start"
if [ "$dry_run" -eq 1 ]; then
  echo "+ launchctl bootout $service   # only if 'launchctl print $service' succeeds (already loaded)"
elif is_loaded; then
  # SIGTERM, then launchd waits up to ExitTimeOut (30 s) for the agent to finish its send in flight.
  run launchctl bootout "$service" || true
  for _ in $(seq 1 40); do is_loaded || break; sleep 0.5; done
  ! is_loaded || die "$service is still loaded after bootout; try again in a few seconds"
fi
if [ "$dry_run" -eq 0 ] && curl -fsS --max-time 2 "$health_url" >/dev/null 2>&1; then
  echo "warning: something still answers $health_url although $service is stopped (an agent started by hand?)." >&2
  echo "         Stop it, or the LaunchAgent cannot take the port (and the data dir lock if it is the same)." >&2
fi
# Swap in the new build only now that nothing runs from the old one.
if [ "$dry_run" -eq 1 ] || [ -d "$bin_dir" ]; then
  run rm -rf "$bin_dir"
fi
run mv "$staging_dir" "$bin_dir"
# enable first: bootstrap refuses a label that was disabled earlier (launchctl disable).
run launchctl enable "$service"
if ! run launchctl bootstrap "$domain" "$plist"; then
  # Right after a bootout launchd sometimes still answers "5: Input/output error": try once more.
  sleep 2
  run launchctl bootstrap "$domain" "$plist" ||
    die "launchctl bootstrap failed. The agent needs this user's GUI login session ($domain): log in at the Mac (not only over ssh) and run install.sh again; details: launchctl print $service"
fi

echo "== health"
if [ "$dry_run" -eq 1 ]; then
  echo "+ curl -fsS $health_url   # every second, up to 30 s, until it answers ok"
else
  ok=0
  for _ in $(seq 1 30); do
    if [ "$(curl -fsS --max-time 2 "$health_url" 2>/dev/null)" = "ok" ]; then ok=1; break; fi
    sleep 1
  done
  if [ "$ok" -eq 1 ]; then
    echo "LineAgent is running: $health_url answers ok"
  else
    echo "LineAgent did not answer $health_url within 30 s. Look at:" >&2
    echo "  tail -n 50 $(printf '%q' "$log_dir/lineagent.err.log") $(printf '%q' "$log_dir/lineagent.log")" >&2
    echo "  launchctl print $service" >&2
    exit 1
  fi
fi

q_program=$(printf '%q' "$program")
same_options=""
[ "$label" = com.lineagent.agent ] || same_options+=" --label $label"
[ "$app_dir" = "$HOME/Library/Application Support/LineAgent" ] || same_options+=" --prefix $(printf '%q' "$app_dir")"
[ "$data_dir" = "$app_dir" ] || same_options+=" --data-dir $(printf '%q' "$data_dir")"
cat <<EOF

Next steps
  1. API token (created on first start, mode 0600):
       $(printf '%q' "$data_dir/api-token")
       or: $q_program token --data-dir $(printf '%q' "$data_dir")
     Agent status:
       curl -s -H "Authorization: Bearer \$($q_program token --data-dir $(printf '%q' "$data_dir"))" $agent_url/api/status
  2. System Settings > Privacy & Security:
       - Full Disk Access: add $program
         (it reads ~/Library/Messages/chat.db). A rebuilt binary may lose the grant: if
         /api/status then says fullDiskAccess "denied", remove the entry and add it again.
       - Automation: allow "lineagent" to control "Messages" (macOS asks on the first send)
     then restart it: launchctl kickstart -k $service
  3. Menu-bar plugin (SwiftBar or xbar): link it into the plugin folder, e.g.
       SwiftBar (the Plugin Folder you chose in its settings):
         ln -sf $(printf '%q' "$script_dir/menubar/lineagent.30s.sh") "/path/to/your/SwiftBar/Plugins/"
       xbar:
         ln -sf $(printf '%q' "$script_dir/menubar/lineagent.30s.sh") ~/Library/Application\\ Support/xbar/plugins/
  Logs:   $(printf '%q' "$log_dir")/lineagent.log and lineagent.err.log
  Remove: bash $(printf '%q' "$script_dir/uninstall.sh")$same_options
EOF
