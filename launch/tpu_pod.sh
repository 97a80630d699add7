#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same ptx command on every worker (gcloud ... --worker=all); jax.distributed finds
# the other workers itself (PTX_DISTRIBUTED=1 tells ptx.main to join them).
#
#   launch/tpu_pod.sh setup TPU_NAME ZONE                  # copy this checkout to every worker, install ptx
#   launch/tpu_pod.sh train TPU_NAME ZONE CONFIG WORKDIR [--config.x=y ...]
#   launch/tpu_pod.sh stop  TPU_NAME ZONE                  # SIGTERM: every worker saves a checkpoint and exits
#
# WORKDIR must be shared by all workers (e.g. a gcsfuse mount of a bucket, or Filestore). Rerunning `train`
# resumes from the latest checkpoint there. Set PROJECT to pass --project; training runs under nohup and logs
# to ~/ptx_train.log on each worker.
set -euo pipefail

usage() { sed -n '2,12p' "$0"; exit 2; }
[[ $# -ge 3 ]] || usage
ACTION=$1 TPU=$2 ZONE=$3
shift 3
GCLOUD=(gcloud compute tpus tpu-vm)
FLAGS=(--zone "$ZONE" --worker=all ${PROJECT:+--project "$PROJECT"})
REPO_DIR="$(cd "$(dirname "$0")/.." && pwd)"

quote() { [[ $# -eq 0 ]] || printf '%q ' "$@"; }

case "$ACTION" in
  setup)
    tar -C "$REPO_DIR" --exclude=.git --exclude='.venv*' --exclude='runs' -czf /tmp/ptx_src.tgz .
    "${GCLOUD[@]}" scp /tmp/ptx_src.tgz "$TPU":/tmp/ptx_src.tgz "${FLAGS[@]}"
    "${GCLOUD[@]}" ssh "$TPU" "${FLAGS[@]}" --command '
      set -e; mkdir -p ~/ptx && tar -C ~/ptx -xzf /tmp/ptx_src.tgz
      python3 -m pip install -q -U "jax[tpu]" -e ~/ptx'
    ;;
  train)
    [[ $# -ge 2 ]] || usage
    CONFIG=$1 WORKDIR=$2
    shift 2
    CMD="cd ~/ptx && PTX_DISTRIBUTED=1 nohup python3 -m ptx.main --config $(quote "$CONFIG") \
--workdir $(quote "$WORKDIR") $(quote "$@") > ~/ptx_train.log 2>&1 &"
    "${GCLOUD[@]}" ssh "$TPU" "${FLAGS[@]}" --command "$CMD"
    echo "started on every worker of $TPU; follow with: ${GCLOUD[*]} ssh $TPU --zone $ZONE --worker=0 --command 'tail -f ~/ptx_train.log'"
    ;;
  stop)
    "${GCLOUD[@]}" ssh "$TPU" "${FLAGS[@]}" --command 'pkill -TERM -f "[p]tx.main" || true'
    ;;
  *) usage ;;
esac
