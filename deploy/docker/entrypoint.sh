#!/bin/sh
# Container entrypoint of the torghut engine in a Kubernetes StatefulSet (one bytewax process per pod).
#
#   torghut-entrypoint init-recovery   create this pod's share of the bytewax recovery partitions, once
#   torghut-entrypoint CMD...          export BYTEWAX_PROCESS_ID / BYTEWAX_ADDRESSES, then exec CMD
#
# The process id is the pod ordinal (the suffix of POD_NAME, e.g. torghut-engine-2 -> 2). Peers are
# addressed through the headless service: <statefulset>-<i>.<service>.<namespace>.svc:<port>.
# Environment: POD_NAME, POD_NAMESPACE, TORGHUT_REPLICAS (must equal the StatefulSet's replicas),
# TORGHUT_HEADLESS_SERVICE (torghut-engine), BYTEWAX_PORT (2101), TORGHUT_CLUSTER_DOMAIN (svc);
# for init-recovery also BYTEWAX_RECOVERY_DIRECTORY, TORGHUT_RECOVERY_PARTITIONS and
# TORGHUT_RECOVERY_INIT_REPLICAS (the replica count when the partitions were first created; never change it).
set -eu

die() {
  echo "torghut-entrypoint: $*" >&2
  exit 64
}

is_uint() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
    *) return 0 ;;
  esac
}

: "${POD_NAME:?torghut-entrypoint: POD_NAME must be set (downward API metadata.name)}"
ordinal="${POD_NAME##*-}"
statefulset="${POD_NAME%-*}"
if ! is_uint "$ordinal"; then die "POD_NAME '$POD_NAME' does not end in a pod ordinal"; fi

init_recovery() {
  dir="${BYTEWAX_RECOVERY_DIRECTORY:?BYTEWAX_RECOVERY_DIRECTORY must be set}"
  parts="${TORGHUT_RECOVERY_PARTITIONS:?TORGHUT_RECOVERY_PARTITIONS must be set}"
  first="${TORGHUT_RECOVERY_INIT_REPLICAS:?TORGHUT_RECOVERY_INIT_REPLICAS must be set}"
  if ! is_uint "$parts" || [ "$parts" -lt 1 ]; then die "TORGHUT_RECOVERY_PARTITIONS must be an integer >= 1"; fi
  if ! is_uint "$first" || [ "$first" -lt 1 ]; then die "TORGHUT_RECOVERY_INIT_REPLICAS must be an integer >= 1"; fi
  mkdir -p "$dir"
  if [ -e "$dir/.torghut-recovery-initialized" ]; then
    echo "torghut-entrypoint: recovery partitions in $dir already initialized"
    return 0
  fi
  for existing in "$dir"/part-*.sqlite3; do
    if [ -e "$existing" ]; then
      die "$dir holds partitions but no init marker: refusing to touch it"
    fi
  done
  # Pods created after the first deployment (scale-up) start with no partition: bytewax only needs the
  # cluster as a whole to hold every partition, and moves state to new workers on resume.
  if [ "$ordinal" -lt "$first" ]; then
    staging="$(mktemp -d)"
    "${PYTHON:-python}" -m bytewax.recovery "$staging" "$parts"
    k=0
    while [ "$k" -lt "$parts" ]; do
      if [ $((k % first)) -eq "$ordinal" ]; then
        mv "$staging/part-$k.sqlite3" "$dir/"
      fi
      k=$((k + 1))
    done
    rm -rf "$staging"
  fi
  : >"$dir/.torghut-recovery-initialized"
  held=0
  for part in "$dir"/part-*.sqlite3; do
    if [ -e "$part" ]; then held=$((held + 1)); fi
  done
  echo "torghut-entrypoint: pod $ordinal holds $held of $parts recovery partitions"
}

if [ "${1:-}" = "init-recovery" ]; then
  init_recovery
  exit 0
fi

[ "$#" -gt 0 ] || die "no command given"
replicas="${TORGHUT_REPLICAS:?TORGHUT_REPLICAS must be set to the StatefulSet replica count}"
if ! is_uint "$replicas" || [ "$replicas" -lt 1 ]; then die "TORGHUT_REPLICAS must be an integer >= 1"; fi
if [ "$ordinal" -ge "$replicas" ]; then die "pod ordinal $ordinal is not below TORGHUT_REPLICAS=$replicas"; fi
service="${TORGHUT_HEADLESS_SERVICE:-torghut-engine}"
namespace="${POD_NAMESPACE:?POD_NAMESPACE must be set (downward API metadata.namespace)}"
port="${BYTEWAX_PORT:-2101}"
domain="${TORGHUT_CLUSTER_DOMAIN:-svc}"

addresses=""
i=0
while [ "$i" -lt "$replicas" ]; do
  addresses="${addresses:+$addresses;}$statefulset-$i.$service.$namespace.$domain:$port"
  i=$((i + 1))
done
BYTEWAX_PROCESS_ID="$ordinal"
BYTEWAX_ADDRESSES="$addresses"
export BYTEWAX_PROCESS_ID BYTEWAX_ADDRESSES
exec "$@"
