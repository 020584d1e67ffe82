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

# Files and folders LineAgent writes into its data directory (the agent, install.sh, restore, backups).
ours_in_data_dir() {   # DIR: prints the names in DIR that are LineAgent's, one per line
  local f
  for f in "$1"/lineagent.db "$1"/lineagent.db?* "$1"/api-token "$1"/api-token.tmp "$1"/agent.lock "$1"/lineagent.json \
           "$1"/outbox "$1"/backups "$1"/.write-check-* "$1"/.lineagent-room-*.tmp; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    printf '%s\n' "${f##*/}"
  done
}

# A bin folder install.sh made: its build manifest, or (installs older than the manifest) the agent's own two files.
is_our_build() {   # DIR
  [ -f "$1/.lineagent-build.sha256" ] || { [ -f "$1/lineagent" ] && [ -f "$1/lineagent.dll" ]; }
}

# Refuses a directory that can never be LineAgent's own: the root, the home directory or any folder holding it, and
# the shared folders of ~/Library. Compared after tidying and resolving symlinks on both sides.
refuse_shared_dir() {   # WHAT DIR
  local dir home
  dir=$(physical "$2")
  home=$(physical "$HOME")
  case "$dir" in
    /|"$home/Library"|"$home/Library/Application Support"|"$home/Library/Logs"|"$home/Library/LaunchAgents"|"$home/Library/Preferences")
      die "refusing $1 $2: it is not a folder of LineAgent's own; nothing was changed" ;;
  esac
  case "$home/" in
    "$dir/"*) die "refusing $1 $2: it is your home directory or holds it; nothing was changed" ;;
  esac
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
