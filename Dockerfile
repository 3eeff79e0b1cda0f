# syntax=docker/dockerfile:1
# posture: `posture serve` (and every other command) in a slim, non-root image.
# Build: docker build -t posture .   Run: see deploy/compose.yaml.

# -- builder: the project's wheel and the wheels of all its dependencies ----------------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install build
COPY pyproject.toml README.md ./
COPY features ./features
COPY pipelines ./pipelines
COPY serving ./serving
COPY posture_cli ./posture_cli
RUN python -m build --wheel --outdir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/posture-*.whl

# -- runtime: the installed wheels only (no compiler, no sources, no pip cache) ---------------
FROM python:3.11-slim-bookworm AS runtime
# postgresql-client: pg_dump/pg_restore for `posture db backup|restore` (bookworm: 15, the
# server's major version in compose.yaml; pg_dump must be at least the server's version).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /srv/posture --create-home posture
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels posture \
 && rm -rf /tmp/wheels
ENV PYTHONUNBUFFERED=1 \
    POSTURE_HOME=/srv/posture \
    POSTURE_HOST=0.0.0.0 \
    POSTURE_PORT=8000 \
    NUMBA_CACHE_DIR=/srv/posture/.cache/numba \
    DO_NOT_TRACK=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
USER posture
WORKDIR /srv/posture
# Compile the featurizer (numba) into NUMBA_CACHE_DIR now, so that no container start pays
# it (seconds); a host whose CPU differs from the build host's recompiles once.
RUN python -c "import numpy as np; from features.contract import ALL_CHANNELS; \
from features.extract import extract_features; extract_features(np.zeros((1, 100, 6)), ALL_CHANNELS, 50.0)"
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["posture"]
CMD ["serve"]
