# posture: `posture serve` (and every other command) in a slim, non-root image.
#   docker build -t posture .                     (base: the public python:3.11-slim-bookworm)
#   docker build --network host --build-arg BASE_IMAGE="$(deploy/local_base.sh)" -t posture .
#                                                 (base: Debian bookworm made here; no registry)
# Run: see deploy/compose.yaml and docs/deployment.md. Any base with python3 (3.11, with its
# venv module) and apt works: the image installs into the virtual environment /opt/posture.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- requirements: the dependency list alone, so that the layer below changes only with it ------
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c "import tomllib; \
project = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
print('\n'.join(project['dependencies']))" > /tmp/requirements.txt

# -- deps: the virtual environment with every dependency (cached until the list changes) ------
FROM ${BASE_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/posture \
 && /opt/posture/bin/pip install --no-compile -r /tmp/requirements.txt

# -- wheel: the project's own wheel ----------------------------------------------------------
FROM deps AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY features ./features
COPY pipelines ./pipelines
COPY serving ./serving
COPY posture_cli ./posture_cli
RUN /opt/posture/bin/pip wheel --no-deps --wheel-dir /wheel .

# -- runtime: the environment and the wheel (no compiler, no sources, no pip cache) ------------
FROM ${BASE_IMAGE} AS runtime
# postgresql-client: pg_dump/pg_restore for `posture db backup|restore` (bookworm: 15, the
# server's major version in compose.yaml; pg_dump must be at least the server's version).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /srv/posture --create-home posture
COPY --from=deps /opt/posture /opt/posture
COPY --from=wheel /wheel /tmp/wheel
RUN /opt/posture/bin/pip install --no-cache-dir --no-deps --no-index /tmp/wheel/posture-*.whl \
 && rm -rf /tmp/wheel
ENV PATH=/opt/posture/bin:$PATH \
    VIRTUAL_ENV=/opt/posture \
    PYTHONUNBUFFERED=1 \
    POSTURE_HOME=/srv/posture \
    POSTURE_HOST=0.0.0.0 \
    POSTURE_PORT=8000 \
    NUMBA_CACHE_DIR=/srv/posture/.cache/numba \
    DO_NOT_TRACK=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
USER posture
WORKDIR /srv/posture
# data/ exists and belongs to the user, so a volume mounted there (compose: its spool) starts
# writable. Compile the featurizer and the JSON frame scanner (numba) into NUMBA_CACHE_DIR now, so that no container
# start pays it (seconds); a host whose CPU differs from the build host's recompiles once.
RUN mkdir -p /srv/posture/data && python -c "import numpy as np; from features.contract import ALL_CHANNELS; \
from features.extract import extract_features; extract_features(np.zeros((1, 100, 6)), ALL_CHANNELS, 50.0); \
from serving.stream import json_samples; json_samples.warm_up()"
EXPOSE 8000
# /healthz on the instance's own port (POSTURE_PORT), also under host networking.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('POSTURE_PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["posture"]
CMD ["serve"]
