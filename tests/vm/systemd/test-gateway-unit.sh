#!/bin/bash
# capsule-gateway under its real unit, systemd as PID 1: a dynamic user with no capabilities and
# no new privileges, the shim's socket reached only through the socket's group (SupplementaryGroups=),
# the keys file read through that group too (0640 root:capsule), its own state directory; an
# OpenAI-shaped session over HTTP (a container, a cell, a file), `systemctl reload` rereading the
# keys, and a restart keeping the Files API's store.
. "$(dirname "$0")/../../runtime/lib.sh"
. "$(dirname "$0")/../helpers.sh"
BUILD=$(cd "$(dirname "$CAPSULE")/.." && pwd)
GATEWAY=$BUILD/shim/gateway/capsule-gateway
U=/etc/systemd/system
PORT=18080
URL=http://127.0.0.1:$PORT
[ -x "$GATEWAY" ] || { echo "not ok - $GATEWAY missing (built without the gateway?)"; finish; exit 1; }
cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "1g", "checkpoint_after_seconds": 86400,
 "tiers": {"1g": {"memory": "256m", "workspace": "16m", "tmp": "16m", "pids": 64}}}
JSON
chmod 644 "$WORK/tiers.json"
getent group capsule >/dev/null || groupadd --system capsule
GID=$(getent group capsule | cut -d: -f3)
# the build's units, as the Debian package sets them up: the socket's group is "capsule"
sed -e "s|^ExecStart=[^ ]*|ExecStart=$BUILD/shim/capsule-shim --tiers $WORK/tiers.json --warm 0|" \
  "$BUILD/shim/capsule-shim.service" > $U/capsule-shim.service
sed -e "s|^SocketGroup=.*|SocketGroup=capsule|" "$BUILD/shim/capsule-shim.socket" > $U/capsule-shim.socket
sed -e "s|^ExecStart=[^ ]*|ExecStart=$BUILD/shim/capsule-shim|" \
  "$BUILD/shim/capsule-sandboxes.service" > $U/capsule-sandboxes.service
# the gateway's unit hides /tmp and /var/tmp (PrivateTmp=), where a CI checkout may be: its
# binary goes where an installed one would be (the guest's / is an overlay on a tmpfs)
install -m 755 "$GATEWAY" /usr/local/bin/capsule-gateway
sed -e "s|^ExecStart=[^ ]*|ExecStart=/usr/local/bin/capsule-gateway|; s|--listen 127.0.0.1:8080|--listen 127.0.0.1:$PORT|" \
  -e "s|^SupplementaryGroups=.*|SupplementaryGroups=capsule|" \
  "$BUILD/shim/gateway/capsule-gateway.service" > $U/capsule-gateway.service
mkdir -p /etc/capsule
KEY_A=sk-unit-a-$RANDOM$RANDOM KEY_B=sk-unit-b-$RANDOM$RANDOM
echo "sha256:$(printf %s "$KEY_A" | sha256sum | cut -d' ' -f1) team-a" > /etc/capsule/gateway-keys
chown root:capsule /etc/capsule/gateway-keys
chmod 640 /etc/capsule/gateway-keys

ids=()
stop_units() {
  local id
  for id in "${ids[@]}"; do
    curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $KEY_A" "$URL/v1/containers/$id"
  done
  systemctl stop capsule-gateway.service capsule-shim.socket capsule-shim.service \
    capsule-sandboxes.service >/dev/null 2>&1
  for c in $(ls /var/lib/capsule-shim/sessions 2>/dev/null); do
    "$CAPSULE" --root /var/lib/capsule-shim/runtime delete --force "$c" >/dev/null 2>&1
  done
  rm -f $U/capsule-shim.service $U/capsule-shim.socket $U/capsule-sandboxes.service \
    $U/capsule-gateway.service /etc/capsule/gateway-keys /usr/local/bin/capsule-gateway
  systemctl daemon-reload
}
trap 'stop_units; cleanup' EXIT
api() { # api KEY METHOD PATH [CURL ARGS]: the body, then the status on its own line
  local key=$1 method=$2 path=$3
  shift 3
  curl -sS --max-time 300 -X "$method" -H "Authorization: Bearer $key" -w '\n%{http_code}' "$@" "$URL$path" 2>&1
}
status_of() { printf '%s' "$1" | tail -n1; }
body_of() { printf '%s' "$1" | sed '$d'; }

systemctl daemon-reload
check_eq "systemd loads the gateway's unit" "loaded" "$(systemctl show -P LoadState capsule-gateway.service)"
systemctl start capsule-shim.socket capsule-gateway.service
check_eq "the shim's socket is the capsule group's" "660 capsule" "$(stat -c '%a %G' /run/capsule-shim.sock)"
listening() { journalctl -u capsule-gateway.service --no-pager -o cat 2>/dev/null | grep -q "listening on"; }
wait_for 120 listening
check_eq "the gateway starts and listens" "active" "$(systemctl is-active capsule-gateway.service)"
[ "$FAILED" = 0 ] || journalctl -u capsule-gateway.service --no-pager -o cat | tail -20 | sed 's/^/#   /'
pid=$(systemctl show -P MainPID capsule-gateway.service)
uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status)
check_ne "it runs as a dynamic user, not root" "0" "$uid"
check_eq "with no capabilities at all" "0000000000000000 0000000000000000 0000000000000000" \
  "$(awk '/^Cap(Eff|Prm|Bnd):/ {printf "%s%s", s, $2; s=" "}' /proc/$pid/status)"
check_eq "and no new privileges" "1" "$(awk '/^NoNewPrivs:/ {print $2}' /proc/$pid/status)"
check_match "in the socket's group (SupplementaryGroups=capsule)" "(^| )$GID( |$)" \
  "$(awk '/^Groups:/ {$1 = ""; print}' /proc/$pid/status)"
check_eq "its state directory is its own, mode 0700" "700 $uid" \
  "$(stat -c '%a %u' /var/lib/private/capsule-gateway 2>&1)"

OUT=$(api nokey GET /v1/containers)
check_eq "a wrong key is 401" "401" "$(status_of "$OUT")"
OUT=$(api "$KEY_A" POST /v1/containers -H 'Content-Type: application/json' -d '{"name": "unit"}')
check_eq "a container is made through the unit's gateway and the socket's group" "200" "$(status_of "$OUT")"
cid=$(json_get "$(body_of "$OUT")" "j['id']")
ids+=("$cid")
check_match "an OpenAI container object" '^cntr_[0-9a-f]{32}$' "$cid"
OUT=$(api "$KEY_A" POST "/v1/containers/$cid/executions" -H 'Content-Type: application/json' \
  -d '{"code": "import os\nopen(\"/mnt/data/out.txt\", \"w\").write(\"from a cell\")\nprint(6 * 7)"}')
check_eq "a cell runs" "200 completed 42" \
  "$(status_of "$OUT") $(json_get "$(body_of "$OUT")" "j['item']['status'] + ' ' + j['item']['outputs'][0]['logs'].strip()")"
fid=$(json_get "$(body_of "$OUT")" "j['annotations'][0]['file_id']")
OUT=$(api "$KEY_A" GET "/v1/containers/$cid/files/$fid/content")
check_eq "the file it made is downloaded" "from a cell 200" "$(body_of "$OUT") $(status_of "$OUT")"
printf 'a,b\n1,2\n' > "$WORK/t.csv"
OUT=$(api "$KEY_A" POST /v1/files -F purpose=user_data -F "file=@$WORK/t.csv")
check_eq "a file goes into the Files API's store (the state directory)" "200" "$(status_of "$OUT")"
file_id=$(json_get "$(body_of "$OUT")" "j['id']")
check_eq "which is on disk under the dynamic user's state directory" "1" \
  "$(find /var/lib/private/capsule-gateway -name "$file_id.data" | wc -l)"

# a new key, then systemctl reload (SIGHUP): the gateway rereads the file
echo "sha256:$(printf %s "$KEY_B" | sha256sum | cut -d' ' -f1) team-b" >> /etc/capsule/gateway-keys
check_eq "before the reload the new key is 401" "401" "$(status_of "$(api "$KEY_B" GET /v1/containers)")"
systemctl reload capsule-gateway.service
reloaded() { [ "$(status_of "$(api "$KEY_B" GET /v1/containers)")" = 200 ]; }
wait_for 60 reloaded
check_eq "after systemctl reload it is taken" "200" "$(status_of "$(api "$KEY_B" GET /v1/containers)")"
check_eq "and team-b does not see team-a's container" "404" \
  "$(status_of "$(api "$KEY_B" GET "/v1/containers/$cid")")"

systemctl restart capsule-gateway.service
wait_for 120 listening
up() { [ "$(status_of "$(api "$KEY_A" GET "/v1/files/$file_id")")" = 200 ]; }
wait_for 60 up
check_eq "after a restart the stored file is still there" "a,b
1,2 200" "$(OUT=$(api "$KEY_A" GET "/v1/files/$file_id/content"); echo "$(body_of "$OUT") $(status_of "$OUT")")"
check_eq "and so is the container" "200" "$(status_of "$(api "$KEY_A" GET "/v1/containers/$cid")")"
OUT=$(api "$KEY_A" DELETE "/v1/containers/$cid")
check_eq "the container is deleted" "200" "$(status_of "$OUT")"
ids=()
[ "$FAILED" = 0 ] || journalctl -u capsule-gateway.service --no-pager -o cat | tail -30 | sed 's/^/#   /'
finish
