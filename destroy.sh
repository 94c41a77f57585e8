#!/usr/bin/env bash
# Tears an environment down: `cargo xtask destroy` (which keeps a final database snapshot
# and its key, and lists what is left), then, after its own confirmation, the DAP secret
# (Secrets Manager keeps it restorable for 7 days).
#   ./destroy.sh [--env NAME] [--yes] [--delete-data]
# With --yes nothing is asked; without it and without a terminal, it stops and says so.
set -euo pipefail
cd "$(dirname "$0")"

env_name=dev
yes=()
data=()
while [ $# -gt 0 ]; do
    case "$1" in
        --env) env_name="${2:?--env needs a name}"; shift 2 ;;
        --env=*) env_name="${1#--env=}"; shift ;;
        --yes) yes=(--yes); shift ;;
        --delete-data) data=(--delete-data); shift ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (usage: ./destroy.sh [--env NAME] [--yes] [--delete-data])" >&2; exit 2 ;;
    esac
done

read -r -a xtask <<< "${CD2_XTASK:-cargo xtask}"
if ! command -v "${xtask[0]}" >/dev/null; then
    echo "error: ${xtask[0]} not found: install Rust (https://rustup.rs), then rerun" >&2
    exit 1
fi

"${xtask[@]}" destroy --env "$env_name" ${yes[@]+"${yes[@]}"} ${data[@]+"${data[@]}"}
"${xtask[@]}" delete-key --env "$env_name" ${yes[@]+"${yes[@]}"}
