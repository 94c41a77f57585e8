#!/bin/bash
# cd2-aws's NAT instance: forwards the private subnets' traffic to the internet, and (on
# demand) stops itself when nothing has been forwarded for a while and no run is under way.
# The stack's user data (a boothook, so at every boot: a change of the stack's reaches an
# instance that was only stopped and started) writes the settings below, this file as
# /usr/local/sbin/cd2-nat, and runs `cd2-nat install`.
#
#   cd2-nat install   every boot, early: the units below, started once the network is up
#   cd2-nat boot      the cd2-nat unit: nftables if missing, forwarding and masquerading
#                     on, security updates, then the ready tag set
#   cd2-nat untag     the cd2-nat unit's stop (any shutdown): the ready tag removed
#   cd2-nat tick      every minute (on demand): stop when idle long enough
#   cd2-nat decide LAST_BYTES IDLE_SINCE BYTES NOW IDLE_MINUTES RUNNING
#                     the tick's decision alone: prints `stop`, or `wait IDLE_SINCE`
#
# Settings (from /etc/cd2-nat.conf): REGION, STATE_MACHINE_ARN, IDLE_MINUTES (0: never
# stops), READY_TAG.
set -euo pipefail

CONF=/etc/cd2-nat.conf
STATE=/var/lib/cd2-nat/counter

# The decision, on numbers alone: traffic forwarded since the last tick, or a run under
# way, keeps the instance up and (for traffic) restarts the idle clock; otherwise it stops
# once the clock has run IDLE_MINUTES.
decide() {
    local last_bytes=$1 idle_since=$2 bytes=$3 now=$4 idle_minutes=$5 running=$6
    if [ "$bytes" != "$last_bytes" ] || [ "$idle_since" -eq 0 ]; then
        echo "wait $now"
    elif [ "$idle_minutes" -eq 0 ] || [ "$running" -gt 0 ]; then
        echo "wait $idle_since"
    elif [ $((now - idle_since)) -ge $((idle_minutes * 60)) ]; then
        echo "stop"
    else
        echo "wait $idle_since"
    fi
}

# IMDSv2 only: a session token first.
imds() {
    local token
    token=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" http://169.254.169.254/latest/api/token)
    curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
}

# A signed AWS API call with the instance role's credentials: SERVICE HOST then curl's
# data arguments.
aws_call() {
    local service=$1 host=$2 role creds key secret session
    shift 2
    role=$(imds meta-data/iam/security-credentials/)
    creds=$(imds "meta-data/iam/security-credentials/$role")
    key=$(sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p' <<<"$creds")
    secret=$(sed -n 's/.*"SecretAccessKey" *: *"\([^"]*\)".*/\1/p' <<<"$creds")
    session=$(sed -n 's/.*"Token" *: *"\([^"]*\)".*/\1/p' <<<"$creds")
    curl -sf --max-time 20 --aws-sigv4 "aws:amz:$REGION:$service" --user "$key:$secret" \
        -H "x-amz-security-token: $session" "$@" "https://$host/"
}

# The instance's ready tag, which the workflow waits for: set once forwarding works,
# removed whenever the instance shuts down. Tried again for a minute: on a first boot the
# role's credentials may not be there yet.
tag() {
    local id attempt
    for attempt in $(seq 1 12); do
        if id=$(imds meta-data/instance-id) &&
            aws_call ec2 "ec2.$REGION.amazonaws.com" --data-urlencode "Action=$1" \
                --data-urlencode "Version=2016-11-15" --data-urlencode "ResourceId.1=$id" \
                --data-urlencode "Tag.1.Key=$READY_TAG" ${2:+--data-urlencode "Tag.1.Value=$2"} >/dev/null; then
            return 0
        fi
        echo "cd2-nat: $1 failed (attempt $attempt); trying again" >&2
        sleep 5
    done
    return 1
}

# A command tried again, a few times (a package mirror, the network coming up).
retry() {
    local attempt
    for attempt in 1 2 3 4 5; do
        "$@" && return 0
        echo "cd2-nat: $* failed (attempt $attempt); trying again" >&2
        sleep $((attempt * 5))
    done
    return 1
}

# Executions of the state machine still running (0 when it cannot be asked: then traffic
# alone decides).
running() {
    aws_call states "states.$REGION.amazonaws.com" -H "X-Amz-Target: AWSStepFunctions.ListExecutions" \
        -H "Content-Type: application/x-amz-json-1.0" \
        --data "{\"stateMachineArn\":\"$STATE_MACHINE_ARN\",\"statusFilter\":\"RUNNING\",\"maxResults\":1}" \
        | grep -c '"executionArn"' || true
}

forwarded_bytes() {
    nft list counter inet cd2_nat forwarded | sed -n 's/.*bytes \([0-9]*\).*/\1/p'
}

boot() {
    # The package manager wants more memory than a nano has: a small swap file first.
    if ! swapon --show=NAME --noheadings | grep -q /swapfile; then
        [ -f /swapfile ] || { fallocate -l 256M /swapfile && chmod 600 /swapfile && mkswap -q /swapfile; }
        swapon /swapfile || true
    fi
    command -v nft >/dev/null || retry dnf -y -q --setopt=install_weak_deps=False install nftables
    sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
    local out
    out=$(ip route show default | awk '{print $5; exit}')
    [ -n "$out" ] || { echo "cd2-nat: no default route yet" >&2; return 1; }
    nft -f - <<NFT
table inet cd2_nat
delete table inet cd2_nat
table inet cd2_nat {
    counter forwarded { }
    chain forward { type filter hook forward priority 0; policy accept; counter name forwarded; }
    chain postrouting { type nat hook postrouting priority 100; oifname "$out" masquerade; }
}
NFT
    mkdir -p "$(dirname "$STATE")"
    echo "0 0" >"$STATE"
    # Security updates of the latest release (Amazon Linux 2023 holds an image to its own
    # release otherwise), before the tag: a run waits for them, about a minute.
    dnf -y -q --releasever=latest upgrade --security ||
        echo "cd2-nat: security updates failed; the next boot tries again" >&2
    tag CreateTags yes
}

untag() {
    tag DeleteTags
}

tick() {
    [ "$IDLE_MINUTES" -eq 0 ] && return 0
    local last_bytes idle_since bytes now answer
    read -r last_bytes idle_since <"$STATE" || { last_bytes=0; idle_since=0; }
    bytes=$(forwarded_bytes)
    now=$(date +%s)
    answer=$(decide "$last_bytes" "$idle_since" "$bytes" "$now" "$IDLE_MINUTES" "$(running)")
    if [ "$answer" = stop ]; then
        echo "cd2-nat: nothing forwarded for $IDLE_MINUTES minutes and no run under way: stopping"
        # Stopping the cd2-nat unit on the way down removes the ready tag.
        shutdown -h now
    else
        echo "$bytes ${answer#wait }" >"$STATE"
    fi
}

install() {
    cat >/etc/systemd/system/cd2-nat.service <<UNIT
[Unit]
Description=cd2-aws NAT: forwarding and masquerading, and the ready tag while it lasts
After=network-online.target
Wants=network-online.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/cd2-nat boot
ExecStop=/usr/local/sbin/cd2-nat untag
Restart=on-failure
RestartSec=15
[Install]
WantedBy=multi-user.target
UNIT
    cat >/etc/systemd/system/cd2-nat-idle.service <<UNIT
[Unit]
Description=cd2-aws NAT: stop when idle
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/cd2-nat tick
UNIT
    cat >/etc/systemd/system/cd2-nat-idle.timer <<UNIT
[Unit]
Description=cd2-aws NAT: look for idleness every minute
[Timer]
OnBootSec=2min
OnUnitActiveSec=1min
[Install]
WantedBy=timers.target
UNIT
    systemctl daemon-reload
    systemctl enable cd2-nat.service cd2-nat-idle.timer
    # Queued, not waited for: this runs early in the boot, before the network is up.
    systemctl start --no-block cd2-nat.service cd2-nat-idle.timer
}

main() {
    local command=${1:-}
    shift || true
    case "$command" in
    decide) decide "$@" ;;
    boot | untag | tick | install)
        # shellcheck source=/dev/null
        . "$CONF"
        "$command"
        ;;
    *)
        echo "usage: cd2-nat install|boot|untag|tick|decide ..." >&2
        exit 2
        ;;
    esac
}

main "$@"
