#!/usr/bin/env bash
# Stores the DAP API client id and secret in the environment's Secrets Manager secret.
#   ./set_key.sh [--env NAME]
# Asks for both without echo, or takes DAP_CLIENT_ID and DAP_CLIENT_SECRET from the
# environment. The secret is never printed. The work is done by `cargo xtask set-key` on the
# AWS SDK, with the standard credentials (AWS_PROFILE, SSO, environment): no AWS CLI needed.
set -euo pipefail
cd "$(dirname "$0")"

env_name=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --env) env_name="${2:?--env needs a name}"; shift 2 ;;
        --env=*) env_name="${1#--env=}"; shift ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (usage: ./set_key.sh [--env NAME])" >&2; exit 2 ;;
    esac
done

# CD2_XTASK: the command that runs the xtask subcommands (the tests point it at the binary).
read -r -a xtask <<< "${CD2_XTASK:-cargo xtask}"
if ! command -v "${xtask[0]}" >/dev/null; then
    echo "error: ${xtask[0]} not found: install Rust (https://rustup.rs), then rerun" >&2
    exit 1
fi

client_id="${DAP_CLIENT_ID:-}"
client_secret="${DAP_CLIENT_SECRET:-}"
if [ -z "$client_id" ] || [ -z "$client_secret" ]; then
    if [ ! -t 0 ]; then
        echo "error: no terminal to ask on: set DAP_CLIENT_ID and DAP_CLIENT_SECRET in the environment" >&2
        exit 1
    fi
    read -r -p "DAP client id: " client_id
    read -r -s -p "DAP client secret (not shown): " client_secret
    echo
fi
# Handed over on standard input (printf is a shell builtin): not in the environment of the
# build that may run first, not in any process's arguments.
unset DAP_CLIENT_ID DAP_CLIENT_SECRET
printf '%s\n%s\n' "$client_id" "$client_secret" | "${xtask[@]}" set-key --env "$env_name" --stdin
