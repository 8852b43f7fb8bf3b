#!/usr/bin/env bash
# Runs a command, then fails if it left a process of one of the given names running (each
# benchmark must stop everything it started: the gateway's once left nginx's workers listening).
# Processes that ran before the command are not its. Reads /proc: needs nothing installed.
#   scripts/no-leftover-processes.sh "nginx ephgateway" cargo test --workspace --bench '*'
set -euo pipefail
names=$1
shift

# "pid name" of every process with one of the names.
matching() {
  for comm in /proc/[0-9]*/comm; do
    local name pid
    name=$(cat "$comm" 2>/dev/null || true)
    pid=${comm#/proc/}
    pid=${pid%/comm}
    for wanted in $names; do
      [ "$name" = "$wanted" ] && echo "$pid $name"
    done
  done
  return 0
}

before=$(matching)
"$@"
left=()
while read -r pid name; do
  [ -n "$pid" ] || continue
  grep -qx "$pid $name" <<<"$before" && continue
  left+=("$name (pid $pid): $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)")
done <<<"$(matching)"
if [ ${#left[@]} -gt 0 ]; then
  echo "left running after: $*" >&2
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
echo "nothing left running of: $names"
