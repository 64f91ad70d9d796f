# One image for every role of the cluster. The command picks the role, always a `bmrs`
# subcommand: `worker --queues ...`, `beat`, `listen`, `flower`, `sim`, or any CLI command
# (`docker compose run --rm worker backfill FUELINST --start ... --end ...`).
#
# No HEALTHCHECK here on purpose: the right check depends on the role, so docker-compose.yml
# and the Kubernetes probes give each role its own (Celery ping for workers, /healthcheck for
# Flower, redis-cli ping for Redis). No secret is baked in: settings come from the environment
# or from files mounted at run time (NAME_FILE).
#
# No `# syntax=` line: the builder would fetch a frontend image from a registry, and an offline
# or mirrored build fails there; nothing here needs a newer Dockerfile syntax.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, in a layer of their own: they change far less often than the code, so a
# code change rebuilds only the package layer below (seconds) instead of every dependency. The
# runtime dependencies only (project.dependencies): no test or bench extras.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
# The packages pyproject.toml installs ([tool.setuptools.packages.find] include); a test keeps
# this list and that one equal.
COPY worker ./worker
COPY beat ./beat
COPY iris_listener ./iris_listener
COPY sheets ./sheets
# The package itself, then what nothing in the cluster loads, about 60 MB: pip itself, pyarrow's
# Flight RPC (libarrow_flight and its bindings: never imported), its C++ headers and its test suite.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip \
    && find /opt/venv/lib -path '*/site-packages/pyarrow/*' -prune \( -name include -o -name tests \
         -o -name 'libarrow_flight.so*' -o -name 'libarrow_python_flight.so*' -o -name '_flight.*.so' \
         -o -name '_pyarrow_cpp_tests.*.so' \) -exec rm -rf {} + \
    && /opt/venv/bin/python -c "import pyarrow.parquet, pyarrow.dataset, pyarrow.compute, duckdb, worker.cli"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="bmrs-cluster" \
      org.opencontainers.image.description="Celery cluster that keeps a duplicate-free copy of Elexon BMRS data" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid so Kubernetes can check runAsNonRoot and volumes can be chowned to it.
# Not a --system account: 10001 is above the system uid range, which useradd warns about.
# --no-log-init: no lastlog/faillog entry, which for a high uid is a large sparse file.
RUN groupadd --gid 10001 bmrs \
    && useradd --no-log-init --uid 10001 --gid bmrs --home-dir /home/bmrs --create-home --shell /usr/sbin/nologin bmrs \
    && mkdir /data \
    && chown bmrs:bmrs /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BMRS_DATA_DIR=/data
USER 10001:10001
# A writable working directory of its own (Kubernetes mounts scratch space here).
WORKDIR /home/bmrs
# No VOLUME for /data: compose mounts the warehouse volume and Kubernetes a claim there, and a
# VOLUME would leave an anonymous volume behind every container that mounts nothing (the
# simulator, `docker compose run` one-offs).
# Flower, and the simulator of the demo profile.
EXPOSE 5555 8000
ENTRYPOINT ["bmrs"]
CMD ["--help"]
