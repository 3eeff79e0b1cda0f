#!/usr/bin/env bash
# The image's own test, before it is pushed: with host networking (loopback only), the image
# trains a model with `posture ingest --sample` and `posture train` (the first time, into
# MODEL_HOME), serves it as its non-root user on a free port, becomes ready and predicts; then
# `docker stop` ends it cleanly (exit 0).
#
#   deploy/smoke_image.sh IMAGE [MODEL_HOME]      (MODEL_HOME default /var/tmp/posture-smoke-model)
#
# POSTURE_DATABASE_URL, when set, is the prediction store (default: SQLite inside the container).
set -euo pipefail

image=${1:?usage: deploy/smoke_image.sh IMAGE [MODEL_HOME]}
model_home=${2:-/var/tmp/posture-smoke-model}
say() { echo "== $*" >&2; }

if [ ! -e "$model_home/mlflow/mlflow.db" ]; then
  say "train a model in $image into $model_home"
  mkdir -p "$model_home" && chmod 777 "$model_home"
  for command in "ingest --sample" "train"; do
    # shellcheck disable=SC2086  # two words on purpose
    docker run --rm --network host -e POSTURE_HOME="$model_home" -v "$model_home:$model_home" "$image" $command >&2
  done
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name=posture-smoke-$$
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
say "serve $image on 127.0.0.1:$port"
docker run -d --name "$name" --network host \
  -e POSTURE_HOME="$model_home" -v "$model_home:$model_home:ro" -e POSTURE_DATA_DIR=/srv/posture/data \
  -e POSTURE_HOST=127.0.0.1 -e POSTURE_PORT="$port" \
  ${POSTURE_DATABASE_URL:+-e POSTURE_DATABASE_URL="$POSTURE_DATABASE_URL"} "$image" >/dev/null
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || { docker logs "$name" >&2; exit 1; }
  sleep 1
done
python3 -c 'import json, math; print(json.dumps({"samples": [[0, 0, 9.81, 0, 0, 0.01 * math.sin(i)] for i in range(300)], "rate_hz": 50}))' \
  | curl -fsS -H 'content-type: application/json' --data-binary @- "http://127.0.0.1:$port/v1/predict" \
  | python3 -c 'import json, sys; a = json.load(sys.stdin); assert a["predictions"], a; print(len(a["predictions"]), "windows predicted by model version", a["model_version"])' >&2
uid=$(docker exec "$name" id -u)
[ "$uid" != 0 ] || { echo "$image runs as root" >&2; exit 1; }
docker stop -t 40 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { echo "$image exited $code on docker stop" >&2; docker logs "$name" >&2; exit 1; }
say "$image passed: ready, predicts, uid $uid, clean stop"
