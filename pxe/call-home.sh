#!/bin/sh
# fleetmind call-home: run once on a node's first boot (the installer leaves it behind with a unit that runs it).
# Waits, with backoff, until the provisioning API answers, gathers this machine's facts (host name, address,
# MAC, CPU, cores, memory, disks) and posts them once to POST /api/ready-for-provisioning with the enrolment
# token. POSIX sh; needs curl or wget. Exit 0: accepted (or already being provisioned); 1: refused (a person must
# look: bad token or invalid facts); 2: bad configuration; 3: gave up after FLEETMIND_CALLHOME_MAX_TRIES.
#
# Settings (environment; the installer writes them to /etc/fleetmind/call-home.env, read first if present):
#   FLEETMIND_PROVISION_URL       base URL of the API, e.g. http://10.0.0.1:8001 (required)
#   FLEETMIND_ENROLMENT_TOKEN     the token, or FLEETMIND_ENROLMENT_TOKEN_FILE (default /etc/fleetmind/enrolment-token)
#   FLEETMIND_CALLHOME_STATE      marker written on success; if it exists the script does nothing
#                                 (default /var/lib/fleetmind/called-home; --force ignores it)
#   FLEETMIND_CALLHOME_MAX_TRIES  0 = forever (default); FLEETMIND_CALLHOME_DELAY first wait in s (default 2);
#   FLEETMIND_CALLHOME_MAX_DELAY  longest wait in s (default 300)
#   FLEETMIND_NODE_HOSTNAME / _IP / _MAC  override what is detected
set -u

ENV_FILE=${FLEETMIND_CALLHOME_ENV:-/etc/fleetmind/call-home.env}
# shellcheck disable=SC1090
[ -r "$ENV_FILE" ] && . "$ENV_FILE"

URL=${FLEETMIND_PROVISION_URL:-}
TOKEN_FILE=${FLEETMIND_ENROLMENT_TOKEN_FILE:-/etc/fleetmind/enrolment-token}
STATE=${FLEETMIND_CALLHOME_STATE:-/var/lib/fleetmind/called-home}
MAX_TRIES=${FLEETMIND_CALLHOME_MAX_TRIES:-0}
DELAY=${FLEETMIND_CALLHOME_DELAY:-2}
MAX_DELAY=${FLEETMIND_CALLHOME_MAX_DELAY:-300}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { printf '%s call-home: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "$2"; exit "$1"; }

case $URL in http://*|https://*) ;; *) die 2 "FLEETMIND_PROVISION_URL must be an http(s) URL";; esac
URL=${URL%/}
case $MAX_TRIES$DELAY$MAX_DELAY in *[!0-9]*) die 2 "tries and delays must be whole numbers";; esac
if [ "$FORCE" = 0 ] && [ -e "$STATE" ]; then log "already called home ($STATE exists)"; exit 0; fi

TOKEN=${FLEETMIND_ENROLMENT_TOKEN:-}
if [ -z "$TOKEN" ] && [ -r "$TOKEN_FILE" ]; then TOKEN=$(tr -d ' \r\n' < "$TOKEN_FILE"); fi
[ -n "$TOKEN" ] || die 2 "no enrolment token (FLEETMIND_ENROLMENT_TOKEN or $TOKEN_FILE)"

if command -v curl >/dev/null 2>&1; then CLIENT=curl
elif command -v wget >/dev/null 2>&1; then CLIENT=wget
else die 2 "neither curl nor wget is installed"; fi

WORK=$(mktemp -d) || die 2 "cannot make a temporary folder"
trap 'rm -rf "$WORK"' EXIT INT TERM
umask 077
# the token goes in a header file, not on a command line that any local user could read with ps
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$WORK/auth"

# http METHOD PATH [BODYFILE]: prints the HTTP status (000 when nothing answered); the body lands in $WORK/resp
http() {
    : > "$WORK/resp"
    if [ "$CLIENT" = curl ]; then
        if [ -n "${3:-}" ]; then
            curl -sS -m 30 -o "$WORK/resp" -w '%{http_code}' -X "$1" -H @"$WORK/auth" \
                -H 'Content-Type: application/json' --data-binary @"$3" "$URL$2" 2>>"$WORK/err" || true
        else
            curl -sS -m 10 -o "$WORK/resp" -w '%{http_code}' "$URL$2" 2>>"$WORK/err" || true
        fi
    else
        if [ -n "${3:-}" ]; then
            wget -S -q -T 30 -t 1 -O "$WORK/resp" --header="$(cat "$WORK/auth")" \
                --header='Content-Type: application/json' --post-file="$3" "$URL$2" 2>"$WORK/hdr" || true
        else
            wget -S -q -T 10 -t 1 -O "$WORK/resp" "$URL$2" 2>"$WORK/hdr" || true
        fi
        code=$(awk '/^ *HTTP\//{c=$2} END{print c}' "$WORK/hdr")
        printf '%s' "${code:-000}"
    fi
}

TRY=0
# backoff: wait DELAY (doubling up to MAX_DELAY) plus up to 25% jitter, so a room of nodes does not stampede
backoff() {
    TRY=$((TRY + 1))
    if [ "$MAX_TRIES" -gt 0 ] && [ "$TRY" -ge "$MAX_TRIES" ]; then die 3 "giving up after $TRY tries"; fi
    rnd=$(od -An -N2 -tu2 /dev/urandom 2>/dev/null | tr -d ' ')
    jitter=$(( ${rnd:-0} % (DELAY / 4 + 1) ))
    log "$1; retrying in $((DELAY + jitter))s"
    sleep $((DELAY + jitter))
    DELAY=$((DELAY * 2)); [ "$DELAY" -gt "$MAX_DELAY" ] && DELAY=$MAX_DELAY
    return 0
}

until [ "$(http GET /health)" = 200 ]; do backoff "API at $URL not answering"; done

# -- facts -----------------------------------------------------------------------------------------------------
json_str() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\000-\037'; }
api_host=$(printf '%s' "$URL" | sed -E 's#^[a-z]+://(\[([^]]+)\]|([^/:]+)).*#\2\3#')
route=$(ip route get "$api_host" 2>/dev/null | head -n 1)
[ -n "$route" ] || route=$(ip route get "$(getent ahosts "$api_host" 2>/dev/null | awk 'NR==1{print $1}')" 2>/dev/null | head -n 1)
dev=$(printf '%s' "$route" | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1)}')

NAME=${FLEETMIND_NODE_HOSTNAME:-$(hostname 2>/dev/null || cat /etc/hostname)}
NAME=$(printf '%s' "$NAME" | tr 'A-Z' 'a-z')
IP=${FLEETMIND_NODE_IP:-$(printf '%s' "$route" | awk '{for(i=1;i<NF;i++) if($i=="src") print $(i+1)}')}
[ -n "$IP" ] || IP=$(hostname -I 2>/dev/null | awk '{print $1}')
MAC=${FLEETMIND_NODE_MAC:-}
if [ -z "$MAC" ] && [ -n "$dev" ] && [ -r "/sys/class/net/$dev/address" ]; then MAC=$(cat "/sys/class/net/$dev/address"); fi
[ "$MAC" = "00:00:00:00:00:00" ] && MAC=""   # loopback has no real MAC

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null | tr -cd 'A-Za-z0-9 ()@.,_+/:-' | cut -c1-128)
cpu_model=$(printf '%s' "$cpu_model" | sed 's/^ *//; s/ *$//')
flags=$(awk -F': ' '/^flags/{print $2; exit}' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -E '^[a-z0-9_.]{1,64}$' | head -n 512 |
    awk 'BEGIN{ORS=""} {printf "%s\"%s\"", (NR>1?",":""), $0}')
cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 1)
ram_mb=$(awk '/^MemTotal:/{printf "%d", $2/1024}' /proc/meminfo 2>/dev/null)
disks=""
for d in /sys/block/*; do
    n=${d##*/}
    case $n in loop*|ram*|zram*|dm-*|sr*|fd*|md*) continue;; esac
    printf '%s' "$n" | grep -Eq '^[A-Za-z0-9._-]{1,64}$' || continue
    sectors=$(cat "$d/size" 2>/dev/null) || continue
    case $sectors in ''|*[!0-9]*) continue;; esac
    disks="$disks${disks:+,}{\"name\":\"$n\",\"size_bytes\":$((sectors * 512))}"
done

{
    printf '{"hostname":"%s","ip":"%s"' "$(json_str "$NAME")" "$(json_str "$IP")"
    [ -n "$MAC" ] && printf ',"mac":"%s"' "$(json_str "$MAC")"
    printf ',"facts":{'
    [ -n "$cpu_model" ] && printf '"cpu_model":"%s",' "$cpu_model"
    printf '"cpu_flags":[%s],"cores":%s' "$flags" "${cores:-1}"
    [ -n "$ram_mb" ] && [ "$ram_mb" -gt 0 ] && printf ',"ram_mb":%s' "$ram_mb"
    printf ',"disks":[%s]}}\n' "$disks"
} > "$WORK/body"

# -- send, once ------------------------------------------------------------------------------------------------
while :; do
    code=$(http POST /api/ready-for-provisioning "$WORK/body")
    case $code in
        202)
            mkdir -p "$(dirname "$STATE")" && cat "$WORK/resp" > "$STATE"
            log "accepted: $(cat "$WORK/resp")"; exit 0;;
        409)
            log "the API already has a job for this node: $(cat "$WORK/resp")"; exit 0;;
        401|403|404|413|422)
            die 1 "refused ($code): $(cat "$WORK/resp")";;
        *)
            backoff "API answered $code";;
    esac
done
