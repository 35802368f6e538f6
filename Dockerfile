# syntax=docker/dockerfile:1
# vaultscan image: `vaultscan serve` by default; `db upgrade` for the migration Job.
# The base is pinned by tag; pin it by digest too (python:3.11.13-slim-bookworm@sha256:...)
# when promoting an image to production.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- builder: wheels for vaultscan and every dependency ---------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY scanner/ scanner/
COPY storage/ storage/
COPY exporters/ exporters/
# constraints.txt: the dependency versions CI tested, every build the same
RUN pip wheel --wheel-dir /wheels -c constraints.txt .

# --- runtime: no compilers, no build context, a numeric non-root user ------------------
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAULTSCAN_ALEMBIC_DIR=/app/alembic
# the wheels are bind-mounted for this one step, so they never land in a layer
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/vaultscan-*.whl \
    && groupadd --system --gid 10001 vaultscan \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin vaultscan
WORKDIR /app
COPY alembic/ /app/alembic/
USER 10001:10001
EXPOSE 9108
ENTRYPOINT ["vaultscan"]
CMD ["serve"]
