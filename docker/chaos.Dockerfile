# The chaos suite in a container (compose profile `chaos`): the worker image plus
# steadfetch[chaos], redis-server and toxiproxy-server, so `steadfetch chaos run --env local`
# runs every scenario against components it owns (it kills, freezes and restarts Redis and cuts
# its network, which it cannot do to a shared stack's Redis).
#
#   docker/build-worker-image.sh chaos      builds it here (after the worker image)
#
# The binaries come from the Redis and Toxiproxy images the tests use (or the official ones).
ARG WORKER_IMAGE=steadfetch/worker:local
ARG REDIS_IMAGE=steadfetch/redis:local
ARG TOXIPROXY_IMAGE=steadfetch/toxiproxy:local
FROM ${REDIS_IMAGE} AS redis
FROM ${TOXIPROXY_IMAGE} AS toxiproxy

FROM ${WORKER_IMAGE}
ARG PIP_OFFLINE=0
USER root
COPY wheels/ /tmp/wheels/
RUN if [ "$PIP_OFFLINE" = 1 ]; then index="--no-index"; else index=""; fi \
 && /opt/steadfetch/bin/python -m ensurepip >/dev/null \
 && /opt/steadfetch/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check $index \
        --find-links /tmp/wheels "$(echo /tmp/wheels/steadfetch-*.whl)[chaos]" \
 && rm -rf /tmp/wheels
COPY --from=toxiproxy /toxiproxy /usr/local/bin/toxiproxy-server
# redis-server with the libraries it was built against, apart from the base's: run through its
# own dynamic loader (exec keeps the PID, so the suite's signals reach redis-server itself).
COPY --from=redis / /opt/redis/
RUN printf '%s\n' '#!/bin/sh' \
      'exec /opt/redis/lib64/ld-linux-x86-64.so.2 --library-path /opt/redis/lib/x86_64-linux-gnu:/opt/redis/usr/lib/x86_64-linux-gnu:/opt/redis/lib:/opt/redis/usr/lib /opt/redis/usr/local/bin/redis-server "$@"' \
      >/usr/local/bin/redis-server \
 && chmod 755 /usr/local/bin/redis-server \
 && redis-server --version && toxiproxy-server -version \
 && mkdir -p /reports && chown steadfetch:steadfetch /reports
USER steadfetch:steadfetch
# Reports and failed runs' directories go to /reports (a volume in compose.yaml).
ENV STEADFETCH_CHAOS_ENV=local
CMD ["chaos", "run", "--env", "local", "--workdir", "/reports/runs", "--junit", "/reports/junit.xml", "--json", "/reports/chaos.json"]
