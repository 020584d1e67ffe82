#!/usr/bin/env bash
# Stops and removes the LineAgent LaunchAgent installed by install.sh. Keeps the data directory
# (database, api-token, lineagent.json) and the logs unless --purge. Idempotent.
set -euo pipefail

usage() {
  cat <<EOF
Usage: launchd/uninstall.sh [options]

Stops the LineAgent LaunchAgent and removes its plist and binary. The data directory (the database
with every message, the api-token, lineagent.json) and the logs are kept unless --purge.

Options:
  --label LABEL     launchd label and plist name (default: com.lineagent.agent)
  --prefix DIR      install directory; DIR/bin is removed
                    (default: ~/Library/Application Support/LineAgent)
  --data-dir DIR    data directory (default: the --prefix directory)
  --purge           also delete LineAgent's files in the data directory (the database!), the folder
                    itself when nothing else is left in it, and ~/Library/Logs/LineAgent
  --dry-run         print the commands instead of running them; changes nothing
  -h, --help        show this help

Use the same --label/--prefix/--data-dir as for install.sh.
EOF
}

die() { printf 'uninstall.sh: %s\n' "$*" >&2; exit 1; }

dry_run=0
purge=0
label="com.lineagent.agent"
app_dir="$HOME/Library/Application Support/LineAgent"
data_dir=""

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --prefix) need_value "$@"; app_dir="$2"; shift 2 ;;
    --prefix=*) need_value "${1%%=*}" "${1#*=}"; app_dir="${1#*=}"; shift ;;
    --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
    --data-dir=*) need_value "${1%%=*}" "${1#*=}"; data_dir="${1#*=}"; shift ;;
    --label) need_value "$@"; label="$2"; shift 2 ;;
    --label=*) need_value "${1%%=*}" "${1#*=}"; label="${1#*=}"; shift ;;
    --purge) purge=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

finish_paths

bin_dir="$app_dir/bin"
staging_dir="$app_dir/bin.new"
log_dir="$HOME/Library/Logs/LineAgent"
plist="$HOME/Library/LaunchAgents/$label.plist"
domain="gui/$UID"
service="$domain/$label"

if [ "$dry_run" -eq 0 ]; then
  if [ "$(uname -s)" != "Darwin" ]; then
    die "this removes a macOS LaunchAgent and this is $(uname -s); nothing was changed.
  See the steps with:   bash launchd/uninstall.sh --dry-run"
  fi
  [ "$(id -u)" -ne 0 ] || die "run this as the user the agent was installed for, not as root or with sudo"
fi

# --purge deletes LineAgent's files in the data directory, never the folder with whatever else it holds: a data dir
# given as "$HOME//" or "//Users/ana" passed a text comparison with the home directory and `rm -rf` took the whole
# home (black-box probe). The folder itself goes only when nothing else is left in it.
if [ "$purge" -eq 1 ]; then
  refuse_shared_dir --data-dir "$data_dir"
fi
kept_data=""
bin_is_ours=1
if [ -e "$bin_dir" ] && ! is_our_build "$bin_dir"; then bin_is_ours=0; fi

app_dir_empty() { [ -d "$app_dir" ] && [ -z "$(ls -A "$app_dir")" ]; }

did=0
# In a dry run every step is shown, with whether it would apply on this machine.
step() {   # step CONDITION-WORDS... -- COMMAND...: run COMMAND when the condition holds
  local cond=()
  while [ "$1" != "--" ]; do cond+=("$1"); shift; done
  shift
  if "${cond[@]}"; then
    run "$@"
    did=1
  elif [ "$dry_run" -eq 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '   # skipped here: %s\n' "$skip_reason"
  fi
}

if [ "$dry_run" -eq 1 ]; then
  echo "# dry run: nothing below is executed or removed"
fi
echo "# LineAgent: label $label, binary $bin_dir, data $data_dir"

echo "== stop"
if [ "$dry_run" -eq 1 ]; then
  echo "+ launchctl bootout $service   # only if 'launchctl print $service' succeeds (loaded)"
elif is_loaded; then
  # SIGTERM; launchd waits up to ExitTimeOut (30 s) for the agent to finish its send in flight.
  run launchctl bootout "$service" || true
  for _ in $(seq 1 40); do is_loaded || break; sleep 0.5; done
  ! is_loaded || die "$service is still loaded after bootout; try again in a few seconds"
  did=1
fi

# An agent started by hand (lineagent run) on the same data directory holds agent.lock too, and launchd knows
# nothing of it: --purge would delete the database under it, and it would go on sending from a deleted file.
# lsof is /usr/sbin/lsof on every macOS; PATH first, so a test can stand one in.
lsof_cmd=$(command -v lsof 2>/dev/null || echo /usr/sbin/lsof)
hand_started=""
if [ "$dry_run" -eq 1 ]; then
  echo "+ $lsof_cmd -t -- $(printf '%q' "$data_dir/agent.lock")   # an agent not started by launchd still running there: --purge stops, deleting nothing"
elif [ -e "$data_dir/agent.lock" ]; then
  if [ -x "$lsof_cmd" ]; then
    hand_started=$("$lsof_cmd" -t -- "$data_dir/agent.lock" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//' || true)
  else
    echo "note: lsof not found, so an agent started by hand on $data_dir cannot be detected"
  fi
fi
if [ -n "$hand_started" ]; then
  if [ "$purge" -eq 1 ]; then
    installed_note=""
    [ ! -e "$plist" ] || installed_note=" The LaunchAgent is stopped but still installed;"
    die "an agent not started by launchd (pid $hand_started) is running on $data_dir: stop it first (Ctrl+C where it runs, or kill -TERM $hand_started), then run this again.$installed_note nothing was deleted."
  fi
  echo "note: an agent not started by launchd (pid $hand_started) is still running on $data_dir; stop it with Ctrl+C where it runs, or kill -TERM $hand_started"
fi

echo "== files"
skip_reason="$plist does not exist"
step test -e "$plist" -- rm -f "$plist"
if [ "$bin_is_ours" -eq 1 ]; then
  skip_reason="$bin_dir does not exist"
  step test -e "$bin_dir" -- rm -rf "$bin_dir"
else
  echo "kept $bin_dir: it is not a LineAgent build (no build manifest, no lineagent and lineagent.dll); remove it yourself if it is"
fi
skip_reason="$staging_dir does not exist"
step test -e "$staging_dir" -- rm -rf "$staging_dir"

if [ "$purge" -eq 1 ]; then
  echo "== purge (data and logs)"
  if [ -d "$data_dir" ]; then
    find_ours "$data_dir"
    for name in ${ours[@]+"${ours[@]}"}; do
      run rm -rf "$data_dir/$name"
      did=1
    done
    # The folder (a link's target, for a data dir on another disk) goes only when nothing else is left in it.
    target=$(physical "$data_dir")
    if [ "$dry_run" -eq 1 ]; then
      echo "+ rmdir $(printf '%q' "$target")   # only when nothing else is left in it"
    elif [ -z "$(find "$target" -mindepth 1 -maxdepth 1 ! -name .DS_Store ! -name .localized -print 2>/dev/null | sed -n 1p)" ]; then
      # Only Finder's own files left (a folder opened in Finder has a .DS_Store): they go with it.
      for name in .DS_Store .localized; do
        if [ -e "$target/$name" ]; then run rm -f "$target/$name"; fi
      done
      run rmdir "$target"
      if [ -L "$data_dir" ]; then run rm -f "$data_dir"; fi
    else
      # sed reads to the end (head would stop early, and under pipefail the script ended with SIGPIPE: review).
      others=$(find "$target" -mindepth 1 -maxdepth 1 -exec basename {} \; | LC_ALL=C sort | sed -n '1,5p' | tr '\n' ' ' | sed 's/ *$//')
      kept_data="$data_dir"
      echo "kept $data_dir: it also holds files that are not LineAgent's ($others)"
    fi
  elif [ "$dry_run" -eq 1 ]; then
    echo "+ rm -rf $(printf '%q' "$data_dir")/<LineAgent's files>   # skipped here: $data_dir does not exist"
  fi
  skip_reason="$log_dir does not exist"
  step test -e "$log_dir" -- rm -rf "$log_dir"
fi
# The install directory, when it is not the data directory and nothing else is left in it.
if [ "$app_dir" != "$data_dir" ]; then
  skip_reason="$app_dir is not an empty directory"
  step app_dir_empty -- rmdir "$app_dir"
fi

echo
if [ "$dry_run" -eq 1 ]; then
  echo "Dry run: nothing was changed."
elif [ "$did" -eq 0 ]; then
  echo "LineAgent ($label) is not installed here: nothing to do."
else
  echo "LineAgent ($label) is stopped and removed."
fi
if [ "$purge" -eq 1 ]; then
  if [ -n "$kept_data" ]; then
    echo "--purge: LineAgent's files in $data_dir (database, api-token, lineagent.json) and the logs in $log_dir are deleted; the folder itself was kept (see above)."
  else
    echo "--purge: the data directory $data_dir (database, api-token, lineagent.json) and the logs in $log_dir $( [ "$dry_run" -eq 1 ] && echo "would be" || echo "are") deleted."
  fi
elif [ -e "$data_dir" ] || [ "$dry_run" -eq 1 ]; then
  echo "Kept the data directory $data_dir (database with every message, api-token, lineagent.json)"
  same_options=""
  [ "$label" = com.lineagent.agent ] || same_options+=" --label $label"
  [ "$app_dir" = "$HOME/Library/Application Support/LineAgent" ] || same_options+=" --prefix $(printf '%q' "$app_dir")"
  [ "$data_dir" = "$app_dir" ] || same_options+=" --data-dir $(printf '%q' "$data_dir")"
  echo "and the logs in $log_dir. Delete them too with: bash $(printf '%q' "$0")$same_options --purge"
fi
echo "Menu-bar plugin: remove the lineagent.30s.sh link from your SwiftBar/xbar plugin folder if you added one."
