#!/usr/bin/env bash
# Builds LineAgent (self-contained) and installs it as a per-user LaunchAgent on macOS.
# Idempotent: running it again rebuilds, rewrites the plist and restarts the agent. A build identical
# to the installed one leaves the installed bin/ directory untouched, so macOS permission grants
# (Full Disk Access, Automation), which are tied to the binary's code signature, stay valid.
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
  --sign IDENTITY   sign bin/lineagent with this code-signing certificate (its name in the keychain,
                    or its SHA-1 hash; default: env LINEAGENT_SIGN_IDENTITY). macOS then keeps the
                    Full Disk Access and Automation grants across rebuilds. Without it the binary keeps
                    the ad-hoc signature dotnet gives it, and the grants belong to that exact binary.
                    See launchd/README.md, "Permissions and code signing".
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
sign_identity=${LINEAGENT_SIGN_IDENTITY:-}
# The code-signing identifier of a certificate-signed binary: part of its designated requirement.
sign_identifier="com.lineagent.agent"

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --rid) need_value "$@"; rid="$2"; shift 2 ;;
    --rid=*) need_value "${1%%=*}" "${1#*=}"; rid="${1#*=}"; shift ;;
    --prefix) need_value "$@"; app_dir="$2"; shift 2 ;;
    --prefix=*) need_value "${1%%=*}" "${1#*=}"; app_dir="${1#*=}"; shift ;;
    --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
    --data-dir=*) need_value "${1%%=*}" "${1#*=}"; data_dir="${1#*=}"; shift ;;
    --label) need_value "$@"; label="$2"; shift 2 ;;
    --label=*) need_value "${1%%=*}" "${1#*=}"; label="${1#*=}"; shift ;;
    --sign) need_value "$@"; sign_identity="$2"; shift 2 ;;
    --sign=*) need_value "${1%%=*}" "${1#*=}"; sign_identity="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

finish_paths
if [ "$sign_identity" = "-" ]; then
  die "--sign - is ad-hoc signing, which dotnet already does: its designated requirement stays the cdhash,
  so macOS would still drop the permission grants at every changed build. Give the name of a code-signing
  certificate (a self-signed one is enough: see launchd/README.md, \"Permissions and code signing\")."
fi
refuse_shared_dir --prefix "$app_dir"
refuse_shared_dir --data-dir "$data_dir"
# install.sh replaces <prefix>/bin and makes the data directory private (chmod 700), and uninstall.sh removes them: only
# in folders that are new, empty or LineAgent's own (--prefix ~/.local deleted ~/.local/bin with the user's tools in it,
# and the database went into ~/.local: black-box probe).
# The data directory inside bin/ (or its staging folder) went with the next changed build (review).
case "$(physical "$data_dir")/" in
  "$(physical "$app_dir/bin")/"*|"$(physical "$app_dir/bin.new")/"*)
    die "refusing --data-dir $data_dir: it is inside $app_dir/bin, which each install replaces; nothing was changed" ;;
esac
if [ -e "$app_dir/bin" ] && [ -n "$(ls -A "$app_dir/bin" 2>/dev/null)" ] && ! is_our_build "$app_dir/bin"; then
  die "refusing --prefix $app_dir: $app_dir/bin is not a LineAgent build, and install.sh replaces that folder.
  Use a folder of LineAgent's own (the default is ~/Library/Application Support/LineAgent); nothing was changed."
fi
if foreign_dir "$app_dir"; then
  die "refusing --prefix $app_dir: it already holds files that are not LineAgent's (install.sh puts bin/ and, by default,
  the database there, and uninstall.sh removes them). Use a new or empty folder; nothing was changed."
fi
if [ "$data_dir" != "$app_dir" ] && foreign_dir "$data_dir"; then
  die "refusing --data-dir $data_dir: it already holds files that are not LineAgent's (it is made private, mode 700,
  and --purge deletes LineAgent's files in it). Use a new or empty folder; nothing was changed."
fi

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
  for tool in launchctl curl shasum cmp; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
  done
  if [ -n "$sign_identity" ]; then
    command -v codesign >/dev/null 2>&1 || die "'codesign' not found on PATH (needed for --sign)"
  fi
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
      -e "$(subst @@PREFIX@@ "$app_dir")" \
      -e "$(subst @@LOG_DIR@@ "$log_dir")" \
      -e "$(subst @@HOME@@ "$HOME")" \
      "$template"
}

# What a build is made of: the SHA-256 of every file (sorted by path), then how lineagent gets signed.
# Written before signing: a certificate signature embeds its signing time, so two signatures of the
# same bytes differ; the hash of what dotnet published does not.
manifest_name=".lineagent-build.sha256"
write_manifest() {   # DIR
  local text
  text=$(cd "$1" && find . -type f ! -name "$manifest_name" -print0 | LC_ALL=C sort -z | xargs -0 shasum -a 256) ||
    die "could not hash the files in $1 (shasum)"
  printf '%s\nsigned-by %s\n' "$text" "${sign_identity:-ad-hoc}" >"$1/$manifest_name"
}
manifest_line() {   # FILE PATTERN: the manifest's line for one entry (empty when absent)
  grep -E "$2" "$1" 2>/dev/null || true
}
# Is the installed lineagent executable the one this build would install (so its grants still hold)?
same_executable() {
  if [ -z "$sign_identity" ]; then
    # Ad-hoc: the bytes are the signature; identical bytes keep the cdhash.
    cmp -s "$bin_dir/lineagent" "$staging_dir/lineagent"
  else
    # Certificate: the same published bytes signed with the same identity (the installed copy is kept).
    [ -f "$bin_dir/$manifest_name" ] &&
      [ "$(manifest_line "$bin_dir/$manifest_name" '  \./lineagent$')" = "$(manifest_line "$staging_dir/$manifest_name" '  \./lineagent$')" ] &&
      [ "$(manifest_line "$bin_dir/$manifest_name" '^signed-by ')" = "$(manifest_line "$staging_dir/$manifest_name" '^signed-by ')" ]
  fi
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

# macOS ties Full Disk Access and Automation to the code signature's designated requirement. For the
# ad-hoc signature dotnet gives the binary that is its cdhash: any changed byte loses the grants
# (System Settings still shows them on). A certificate makes it "identifier + certificate", which
# survives rebuilds. So: keep an identical build untouched, and say so when the grants must be renewed.
echo "== compare with the installed build (an unchanged binary keeps its permission grants)"
signing="ad-hoc (as dotnet signs it)"
[ -z "$sign_identity" ] || signing="certificate '$sign_identity', identifier $sign_identifier"
echo "#   signing: $signing"
printf '+ (cd %q && find . -type f | sort | xargs shasum -a 256; echo signed-by ...) > %q\n' "$staging_dir" "$staging_dir/$manifest_name"
build_state=new           # new | unchanged | same-executable | changed
installed_signer=""       # the signed-by line of the installed build, when it has a manifest
if [ "$dry_run" -eq 1 ]; then
  echo "# then, compared with $bin_dir/$manifest_name:"
  echo "#   identical build           -> keep $bin_dir untouched (grants stay valid)"
  echo "#   same lineagent executable -> keep the installed bin/lineagent file, replace the other files"
  echo "#   lineagent changed         -> install it; ad-hoc signed: grant Full Disk Access and Automation again"
else
  write_manifest "$staging_dir"
  if [ -f "$bin_dir/lineagent" ]; then
    installed_signer=$(manifest_line "$bin_dir/$manifest_name" '^signed-by ')
    if [ -f "$bin_dir/$manifest_name" ] && cmp -s "$bin_dir/$manifest_name" "$staging_dir/$manifest_name"; then
      build_state=unchanged
    elif same_executable; then
      build_state=same-executable
    else
      build_state=changed
    fi
  fi
  case "$build_state" in
    new) echo "# first install into $bin_dir" ;;
    unchanged) echo "# identical to the installed build: $bin_dir stays untouched" ;;
    same-executable) echo "# the lineagent executable is unchanged (other files changed): the installed one is kept" ;;
    changed) echo "# the lineagent executable changed" ;;
  esac
fi

if [ -n "$sign_identity" ]; then
  if [ "$dry_run" -eq 1 ]; then
    printf '+ codesign --force --sign %q --identifier %q %q   # only when lineagent is new or changed\n' \
      "$sign_identity" "$sign_identifier" "$staging_dir/lineagent"
  elif [ "$build_state" = new ] || [ "$build_state" = changed ]; then
    # No --options runtime: the hardened runtime would need entitlements for .NET's JIT.
    run codesign --force --sign "$sign_identity" --identifier "$sign_identifier" "$staging_dir/lineagent" ||
      die "codesign could not sign with '$sign_identity'. Is there a code-signing certificate of that name in
  your login keychain (security find-identity -p codesigning)? See launchd/README.md, \"Permissions and code signing\"."
    # The designated requirement macOS will check the grants against: identifier + certificate, no cdhash.
    run codesign -d -r- "$staging_dir/lineagent" || true
  fi
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
if [ "$dry_run" -eq 1 ]; then
  echo "+ rm -rf $(printf '%q' "$staging_dir")   # when the build is identical: $(printf '%q' "$bin_dir") stays as it is"
  echo "+ mv -f $(printf '%q' "$bin_dir/lineagent") $(printf '%q' "$staging_dir/lineagent")   # when only other files changed: keep the installed executable"
  echo "+ rm -rf $(printf '%q' "$bin_dir")   # otherwise"
  run mv "$staging_dir" "$bin_dir"
elif [ "$build_state" = unchanged ]; then
  run rm -rf "$staging_dir"
else
  if [ "$build_state" = same-executable ]; then
    run mv -f "$bin_dir/lineagent" "$staging_dir/lineagent"
  fi
  if [ -d "$bin_dir" ]; then
    run rm -rf "$bin_dir"
  fi
  run mv "$staging_dir" "$bin_dir"
fi
# enable first: bootstrap refuses a label that was disabled earlier (launchctl disable).
run launchctl enable "$service"
if ! run launchctl bootstrap "$domain" "$plist"; then
  # Right after a bootout launchd sometimes still answers "5: Input/output error": try once more.
  sleep 2
  run launchctl bootstrap "$domain" "$plist" ||
    die "launchctl bootstrap failed. The agent needs this user's GUI login session ($domain): log in at the Mac (not only over ssh) and run install.sh again; details: launchctl print $service"
fi

echo "== permissions (Full Disk Access, Automation)"
new_signer="signed-by ${sign_identity:-ad-hoc}"
if [ "$dry_run" -eq 1 ]; then
  echo "# depends on the comparison above: kept or certificate-signed -> the grants stay valid;"
  echo "# a changed ad-hoc signed lineagent -> grant Full Disk Access and Automation again"
elif [ "$build_state" = new ]; then
  echo "First install: grant Full Disk Access and Automation (step 2 below)."
elif [ "$build_state" = unchanged ] || [ "$build_state" = same-executable ]; then
  echo "The lineagent executable is unchanged: its Full Disk Access and Automation grants stay valid."
elif [ -n "$sign_identity" ] && [ "$installed_signer" = "$new_signer" ]; then
  echo "The lineagent executable changed; it is signed with the certificate '$sign_identity' as before, so its"
  echo "designated requirement (identifier + certificate) is the same: the grants stay valid."
else
  if [ -n "$sign_identity" ]; then
    echo "!! lineagent is now signed with the certificate '$sign_identity' (before: ${installed_signer#signed-by }), so macOS"
    echo "!! treats it as a new program: grant Full Disk Access and Automation once more. Later builds signed with"
    echo "!! the same certificate keep them."
  else
    echo "!! The lineagent executable changed and is ad-hoc signed: macOS ties Full Disk Access and Automation to"
    echo "!! this exact binary (its cdhash), so the old grants no longer apply although System Settings still shows"
    echo "!! them switched on. Grant them again:"
  fi
  echo "!!   - System Settings > Privacy & Security > Full Disk Access: select lineagent, remove it (-), then add"
  echo "!!     $program again (+, Cmd+Shift+G to type the path)"
  echo "!!   - Automation (Privacy & Security > Automation > lineagent > Messages): if sends fail with -1743,"
  echo "!!     switch it off and on, or run 'tccutil reset AppleEvents' so that macOS asks again"
  echo "!!   then: launchctl kickstart -k $service"
  if [ -z "$sign_identity" ]; then
    echo "!! To keep the grants across updates, sign with a certificate: install.sh --sign \"NAME\""
    echo "!! (a self-signed code-signing certificate is enough: launchd/README.md, \"Permissions and code signing\")."
  fi
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
doctor_options=""
[ "$label" = com.lineagent.agent ] || doctor_options=" --Agent:LaunchdLabel=$label"
plugin_env=""
[ "$app_dir" = "$HOME/Library/Application Support/LineAgent" ] || plugin_env+=" LINEAGENT_PREFIX=$(printf '%q' "$app_dir")"
[ "$data_dir" = "$app_dir" ] || plugin_env+=" LINEAGENT_DATA_DIR=$(printf '%q' "$data_dir")"
[ "$label" = com.lineagent.agent ] || plugin_env+=" LINEAGENT_LABEL=$label"
cat <<EOF

Next steps
  1. API token (created on first start, mode 0600):
       $(printf '%q' "$data_dir/api-token")
       or: $q_program token --data-dir $(printf '%q' "$data_dir")
     Agent status:
       curl -s -H "Authorization: Bearer \$($q_program token --data-dir $(printf '%q' "$data_dir"))" $agent_url/api/status
  2. System Settings > Privacy & Security (see "== permissions" above for whether this is needed now):
       - Full Disk Access: add $program
         (it reads ~/Library/Messages/chat.db)
       - Automation: allow "lineagent" to control "Messages" (macOS asks on the first send)
     then restart it: launchctl kickstart -k $service
     Check everything (permissions, login items, signature, login session):
       $q_program doctor --data-dir $(printf '%q' "$data_dir")$doctor_options
  3. Menu-bar plugin (SwiftBar or xbar): link it into the plugin folder, e.g.
       SwiftBar (the Plugin Folder you chose in its settings):
         ln -sf $(printf '%q' "$script_dir/menubar/lineagent.30s.sh") "/path/to/your/SwiftBar/Plugins/"
       xbar:
         ln -sf $(printf '%q' "$script_dir/menubar/lineagent.30s.sh") ~/Library/Application\\ Support/xbar/plugins/
$([ -z "$plugin_env" ] || printf '     and set its variables (xbar: the plugin'"'"'s settings; SwiftBar: the environment line in the script):\n      %s' "$plugin_env")
  Logs:   $(printf '%q' "$log_dir")/lineagent.log and lineagent.err.log
  Remove: bash $(printf '%q' "$script_dir/uninstall.sh")$same_options
EOF
