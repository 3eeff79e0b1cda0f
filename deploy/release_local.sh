#!/usr/bin/env bash
# The CI/CD flow of .github/workflows/ci.yml, run on one machine: build the image, test it,
# push it to a registry, pull it back by digest and deploy that digest. Everything stays on
# loopback: the registry listens on 127.0.0.1 and every container uses the host's network.
#
#   deploy/release_local.sh
#
# Settings (environment):
#   POSTURE_RELEASE_REGISTRY  registry host:port (default 127.0.0.1:5000); when nothing answers
#                             there, Debian's docker-registry is started on it (state in
#                             /var/tmp/posture-registry), and left running
#   POSTURE_RELEASE_BASE      base image (default: the local Debian base, deploy/local_base.sh;
#                             python:3.11-slim-bookworm where Docker Hub is reachable)
#   POSTURE_RELEASE_NAME      the deployed container's name (default posture-local)
#   POSTURE_RELEASE_PORT      its port on the host (default 8000)
#   POSTURE_MODEL_HOME        a posture home holding a registered model, mounted read-only at
#                             the same path (default /var/tmp/posture-release-model; when it
#                             has none, deploy/smoke_image.sh trains one in the image)
#   POSTURE_RELEASE_VERSION   the image's tag (default: the commit, git rev-parse --short=12)
#   POSTURE_DATABASE_URL      the prediction store (default: SQLite in the container's volume)
# Prints the deployed reference, REGISTRY/posture@sha256:..., as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=${POSTURE_RELEASE_REGISTRY:-127.0.0.1:5000}
name=${POSTURE_RELEASE_NAME:-posture-local}
port=${POSTURE_RELEASE_PORT:-8000}
model_home=${POSTURE_MODEL_HOME:-/var/tmp/posture-release-model}
version=${POSTURE_RELEASE_VERSION:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)}
image=posture:$version
say() { echo "== $*" >&2; }

# -- build ------------------------------------------------------------------------------------
base=${POSTURE_RELEASE_BASE:-$(deploy/local_base.sh)}
say "build $image on $base"
docker build --quiet --network host --build-arg BASE_IMAGE="$base" -t "$image" . >&2

# -- test: the image trains, serves as its non-root user, becomes ready and predicts ---------
deploy/smoke_image.sh "$image" "$model_home"

# -- push -----------------------------------------------------------------------------------
if ! curl -fsS "http://$registry/v2/" >/dev/null 2>&1; then
  say "start docker-registry on $registry"
  mkdir -p /var/tmp/posture-registry
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /var/tmp/posture-registry\nhttp:\n  addr: %s\n' \
    "$registry" > /var/tmp/posture-registry/config.yml
  setsid /usr/bin/docker-registry serve /var/tmp/posture-registry/config.yml >/var/tmp/posture-registry/log 2>&1 </dev/null &
  for _ in $(seq 30); do curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.5; done
fi
say "push $registry/posture:$version"
docker tag "$image" "$registry/posture:$version"
docker push "$registry/posture:$version" >&2
digest=$(docker inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$image" | grep "^$registry/posture@" | head -n1)
[ -n "$digest" ] || { echo "no digest from $registry after the push" >&2; exit 1; }

# -- deploy: pull by digest, replace the running container, wait for its healthcheck ----------
say "deploy $digest as $name on 127.0.0.1:$port"
docker rmi "$registry/posture:$version" >/dev/null
docker pull "$digest" >&2
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --network host --restart unless-stopped -v "$name-data:/srv/posture/data" \
  -e POSTURE_HOME="$model_home" -v "$model_home:$model_home:ro" -e POSTURE_DATA_DIR=/srv/posture/data \
  -e POSTURE_HOST=127.0.0.1 -e POSTURE_PORT="$port" \
  ${POSTURE_DATABASE_URL:+-e POSTURE_DATABASE_URL="$POSTURE_DATABASE_URL"} "$digest" >/dev/null
health=starting
for _ in $(seq 120); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" = healthy ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || break
  sleep 1
done
[ "$health" = healthy ] || { echo "$name is $health, not healthy" >&2; docker logs "$name" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$port/readyz" >&2 && echo >&2
say "deployed: $name is healthy"
echo "$digest"
