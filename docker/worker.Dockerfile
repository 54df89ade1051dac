# The production worker image: `steadfetch` as a non-root user on a slim Python.
#
#   docker/build-worker-image.sh            builds it here (no registry: a local Debian base and
#                                           a host-built wheelhouse); see that script.
#   docker build -f docker/worker.Dockerfile --build-arg BASE=python:3.11-slim-bookworm CONTEXT
#                                           anywhere else; CONTEXT holds wheels/ (at least the
#                                           steadfetch wheel) and example/.
#
# BASE must be a Debian-family image with python3 (>= 3.11) and its venv module. steadfetch is
# installed from its wheel file in wheels/ (never a same-named distribution from an index).
# PIP_OFFLINE=1 takes the dependencies from wheels/ only (no package index); otherwise pip fills
# in from the index whatever wheels/ lacks (e.g. wheels for another Python version than the host's).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_OFFLINE=0
COPY wheels/ /wheels/
RUN python3 -m venv /opt/steadfetch \
 && if [ "$PIP_OFFLINE" = 1 ]; then index="--no-index"; else index=""; fi \
 && /opt/steadfetch/bin/pip install --no-cache-dir --disable-pip-version-check $index \
        --find-links /wheels /wheels/steadfetch-*.whl \
 && /opt/steadfetch/bin/pip uninstall -y -q pip \
 && /opt/steadfetch/bin/steadfetch --help >/dev/null

FROM ${BASE} AS runtime
# The venv's python links to the base's python3, so both stages use the same BASE.
COPY --from=build /opt/steadfetch /opt/steadfetch
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin steadfetch \
 && mkdir -p /app && chown steadfetch:steadfetch /app
# The example app (`example_jobs:app`) and its producer; mount or COPY your own app over /app.
COPY --chown=steadfetch:steadfetch example/ /app/
WORKDIR /app
USER steadfetch:steadfetch
# The worker's settings come from STEADFETCH_<FLAG> variables (see `steadfetch run --help`).
# /healthz listens on every interface inside the container; publish it (or not) as you need.
# The grace period stays under `docker stop`'s default 10 s timeout, so a stop is a clean
# shutdown (exit 0) rather than a SIGKILL: raise both together (docker stop -t / compose
# stop_grace_period).
ENV PATH=/opt/steadfetch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STEADFETCH_METRICS_HOST=0.0.0.0 \
    STEADFETCH_METRICS_PORT=9100 \
    STEADFETCH_GRACE_PERIOD=8
EXPOSE 9100
STOPSIGNAL SIGTERM
# No curl in a slim image: the venv's python asks /healthz (an HTTP error or no answer = unhealthy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STEADFETCH_METRICS_PORT', '9100'), timeout=4)"]
ENTRYPOINT ["steadfetch"]
CMD ["run", "example_jobs:app"]
