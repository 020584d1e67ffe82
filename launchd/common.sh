# shellcheck shell=bash
# Shared by install.sh and uninstall.sh (sourced, not run). Expects die() and the variables
# dry_run, label, app_dir, data_dir (and service, for is_loaded) to be defined by the script that sources it.
# shellcheck disable=SC2154  # those variables belong to the sourcing script

need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

# launchd needs absolute paths; make relative ones absolute against the current directory.
absolute() {
  case "$1" in
    /*) printf '%s' "${1%/}" ;;
    *) printf '%s/%s' "$PWD" "${1%/}" ;;
  esac
}

# After option parsing: default the data dir to the install dir, make paths absolute, check the label.
finish_paths() {
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
