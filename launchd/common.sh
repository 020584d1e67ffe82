# shellcheck shell=bash
# Shared by install.sh and uninstall.sh (sourced, not run). Expects die() and the variables
# dry_run, label, app_dir, data_dir (and service, for is_loaded) to be defined by the script that sources it.
# Written for macOS's bash 3.2 as well as newer ones.
# shellcheck disable=SC2154  # those variables belong to the sourcing script

# need_value OPTION VALUE...: for "--x VALUE" (need_value "$@") and "--x=VALUE" (need_value "${1%%=*}" "${1#*=}"):
# an empty value is refused (--prefix= from an unset variable meant the current directory; black-box probe).
need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

# launchd needs absolute paths: relative ones are made absolute against the current directory, and the result
# is tidied as text: repeated slashes, "." and ".." (lexically) and a trailing slash go. "$HOME//" and "//home"
# passed the checks below as something other than the home directory and were then deleted (probe).
absolute() {
  local p=$1 part out=""
  local -a parts kept
  case "$p" in /*) ;; *) p="$PWD/$p" ;; esac
  IFS=/ read -r -a parts <<<"$p"
  kept=()
  for part in ${parts[@]+"${parts[@]}"}; do
    case "$part" in
      ""|.) ;;
      ..) if [ "${#kept[@]}" -gt 0 ]; then unset "kept[$((${#kept[@]} - 1))]"; kept=(${kept[@]+"${kept[@]}"}); fi ;;
      *) kept+=("$part") ;;
    esac
  done
  for part in ${kept[@]+"${kept[@]}"}; do out="$out/$part"; done
  printf '%s' "${out:-/}"
}

# The directory as the file system sees it (symlinks resolved) when it exists, else the tidied text.
physical() { if [ -d "$1" ]; then (cd -P -- "$1" 2>/dev/null && pwd -P) || absolute "$1"; else absolute "$1"; fi; }

# LineAgent's entries in a data directory, set in the array `ours` (names, not paths): the files the agent, restore and
# backups write, and then `api-token`, `outbox`, `backups` and Finder's `.DS_Store` only beside one of them (alone they are common
# folder names: `--purge --data-dir ~/Documents` deleted a backups/ of the user's; review). An array, never lines of text:
# a name with a newline in it split into two names, one of them another folder (review).
ours=()
find_ours() {   # DIR
  local f core=0
  ours=()
  for f in "$1"/lineagent.db "$1"/lineagent.db?* "$1"/agent.lock "$1"/lineagent.json "$1"/.write-check-* "$1"/.lineagent-room-*.tmp; do
    if [ -e "$f" ] || [ -L "$f" ]; then ours+=("${f##*/}"); core=1; fi
  done
  [ "$core" -eq 1 ] || return 0
  # api-token too is a name other tools use (review): LineAgent's only beside the files above.
  for f in "$1"/api-token "$1"/api-token.tmp "$1"/agent-url "$1"/agent-url.tmp "$1"/outbox "$1"/backups "$1"/.DS_Store; do
    if [ -e "$f" ] || [ -L "$f" ]; then ours+=("${f##*/}"); fi
  done
}

# A bin folder install.sh made: its build manifest, or (installs older than the manifest) the agent's own two files.
is_our_build() {   # DIR
  [ -f "$1/.lineagent-build.sha256" ] || { [ -f "$1/lineagent" ] && [ -f "$1/lineagent.dll" ]; }
}

# True when DIR exists and holds something that is neither LineAgent's nor harmless: Finder's .DS_Store and .localized,
# and bin.new, the staging folder of an install that stopped half-way (a failed codesign or a Ctrl+C in the first publish
# left it, and every later install was refused: review), do not count.
foreign_dir() {   # DIR
  local f name
  [ -d "$1" ] || return 1
  ! is_our_build "$1/bin" || return 1
  find_ours "$1"
  [ "${#ours[@]}" -eq 0 ] || return 1
  for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    name=${f##*/}
    case "$name" in
      .DS_Store|.localized|bin.new) ;;
      bin) if [ -n "$(find "$f" -mindepth 1 -maxdepth 1 -print 2>/dev/null | sed -n 1p)" ]; then return 0; fi ;; # an empty bin/ is nothing
      *) return 0 ;;
    esac
  done
  return 1
}

# Refuses a directory that can never be LineAgent's own: the root, the home directory or any folder holding it, and
# the shared folders of ~/Library. Compared as tidied, symlink-resolved text and, where it exists, as the same file
# (test -ef: device and inode), which also catches another case on macOS's case-insensitive disk (/users/ana), a
# firmlink (/System/Volumes/Data/Users/ana) or a link to a parent of the home (review).
refuse_shared_dir() {   # WHAT DIR
  local dir home up next shared
  dir=$(physical "$2")
  home=$(physical "$HOME")
  case "$dir" in
    /|"$home/Library"|"$home/Library/Application Support"|"$home/Library/Logs"|"$home/Library/LaunchAgents"|"$home/Library/Preferences")
      die "refusing $1 $2: it is not a folder of LineAgent's own; nothing was changed" ;;
  esac
  case "$home/" in
    "$dir/"*) die "refusing $1 $2: it is your home directory or holds it; nothing was changed" ;;
  esac
  [ -d "$2" ] || return 0
  # From the resolved home up to /; dirname of a relative HOME would end at "." for ever (review).
  up=$home
  while :; do
    [ ! "$2" -ef "$up" ] || die "refusing $1 $2: it is your home directory or holds it; nothing was changed"
    next=$(dirname "$up")
    if [ "$next" = "$up" ]; then break; fi
    up=$next
  done
  for shared in "$HOME/Library" "$HOME/Library/Application Support" "$HOME/Library/Logs" "$HOME/Library/LaunchAgents" "$HOME/Library/Preferences"; do
    [ ! "$2" -ef "$shared" ] || die "refusing $1 $2: it is not a folder of LineAgent's own; nothing was changed"
  done
}

# After option parsing: default the data dir to the install dir, make paths absolute, check the label.
finish_paths() {
  for p in "$app_dir" "$data_dir" "$HOME"; do
    case "$p" in *$'\n'*) die "paths must not contain newlines" ;; esac
  done
  [ -n "$data_dir" ] || data_dir="$app_dir"
  app_dir=$(absolute "$app_dir")
  data_dir=$(absolute "$data_dir")
  case "$label" in
    *[!A-Za-z0-9._-]*|"") die "--label may only contain letters, digits, '.', '_' and '-': '$label'" ;;
  esac
}

# Prints a command prefixed with "+ " (shell-quoted), then runs it unless --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$dry_run" -eq 0 ]; then
    "$@"
  fi
}

is_loaded() { launchctl print "$service" >/dev/null 2>&1; }
