#!/usr/bin/env bash
# A long-lived local control plane (etcd + kube-apiserver + kube-controller-manager's garbage
# collector) for `make run` and manual testing.
#
#   hack/cluster.sh up     start it (idempotent) and print the kubeconfig path
#   hack/cluster.sh down   stop it and delete its data
#   hack/cluster.sh status
#
# State lives in $SWF_CLUSTER_DIR (default: .cluster/ in the repo): pid files, logs, certs,
# etcd data, and `kubeconfig` (admin token).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SWF_CLUSTER_DIR:-$ROOT/.cluster}
API_PORT=${SWF_CLUSTER_API_PORT:-16443}
ETCD_PORT=${SWF_CLUSTER_ETCD_PORT:-12379}
PEER_PORT=${SWF_CLUSTER_ETCD_PEER_PORT:-12380}
KUBECONFIG_PATH=$DIR/kubeconfig

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }

running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start() { # name, command...
  local name=$1; shift
  if running "$name"; then log "$name already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  nohup "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
  log "started $name (pid $!, log $DIR/$name.log)"
}

pki() {
  [ -f "$DIR/pki/done" ] && return
  mkdir -p "$DIR/pki"; cd "$DIR/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=swf-operator-local-ca \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout serving.key -out serving.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
  openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile san.ext -out serving.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  token=$(openssl rand -hex 16)
  printf '%s,swf-admin,swf-admin,"system:masters"\n' "$token" >tokens.csv
  cat >"$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: swf-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: swf-admin
  user:
    token: $token
contexts:
- name: swf-local
  context: {cluster: swf-local, user: swf-admin}
current-context: swf-local
KC
  touch done
  cd - >/dev/null
}

up() {
  command -v kubectl >/dev/null || die "kubectl not found"
  ASSETS=$("$ROOT/hack/kube-assets.sh")
  mkdir -p "$DIR"
  pki
  start etcd "$ASSETS/etcd" --name=swf-local --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$PEER_PORT" \
    --initial-cluster="swf-local=http://127.0.0.1:$PEER_PORT" --log-level=warn
  start kube-apiserver "$ASSETS/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$API_PORT" --insecure-port=0 --cert-dir="$DIR/pki" \
    --tls-cert-file="$DIR/pki/serving.crt" --tls-private-key-file="$DIR/pki/serving.key" \
    --client-ca-file="$DIR/pki/ca.crt" --token-auth-file="$DIR/pki/tokens.csv" \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --authorization-mode=RBAC \
    --service-cluster-ip-range=10.96.0.0/24 --disable-admission-plugins=ServiceAccount --allow-privileged=true
  local deadline=$((SECONDS + 120))
  until kubectl --kubeconfig="$KUBECONFIG_PATH" get --raw=/readyz >/dev/null 2>&1; do
    running kube-apiserver || die "kube-apiserver exited; see $DIR/kube-apiserver.log"
    [ $SECONDS -lt $deadline ] || die "kube-apiserver not ready after 120s; see $DIR/kube-apiserver.log"
    sleep 0.5
  done
  # Garbage collector: deleting a ScheduledWorkflow deletes its runs (owner references).
  start kube-controller-manager "$ASSETS/kube-controller-manager" --kubeconfig="$KUBECONFIG_PATH" \
    --controllers=garbagecollector,namespace --leader-elect=false --port=0 --secure-port=0 \
    --use-service-account-credentials=false
  log "ready: export KUBECONFIG=$KUBECONFIG_PATH"
  echo "$KUBECONFIG_PATH"
}

down() {
  for name in kube-controller-manager kube-apiserver etcd; do
    if running "$name"; then kill "$(cat "$DIR/$name.pid")" && log "stopped $name"; fi
    rm -f "$DIR/$name.pid"
  done
  sleep 1
  rm -rf "$DIR"
  log "removed $DIR"
}

status() {
  for name in etcd kube-apiserver kube-controller-manager; do
    if running "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
  done
  echo "kubeconfig: $KUBECONFIG_PATH"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
