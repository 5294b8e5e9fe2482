# Shorty's one image: `shorty serve api|redirect|worker`, `shorty migrate`,
# `shorty backup` and `shorty-operator` all run from it (the chart sets `command:`
# per workload). See docs/image.md.
#
#   docker build -t shorty:dev .
#
# BASE: an official slim Python image pinned by exact version. Any Debian
# bookworm image whose `python3` has the venv module works (tests/image builds on
# one made with debootstrap, since no registry is reachable there).
ARG BASE=python:3.12.8-slim-bookworm

# ---------------------------------------------------------------- wheels + venv
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
# The dependencies first, in a layer of their own, so that a change to Shorty's
# code rebuilds only the last two steps: an empty package tree is enough for pip
# to read pyproject.toml and build every dependency's wheel.
COPY pyproject.toml README.md ./
RUN mkdir -p services operator \
    && /opt/venv/bin/pip wheel --wheel-dir /wheels '.[operator,s3]' \
    && rm /wheels/shorty-*.whl
COPY services services
COPY operator operator
# Byte-compiled here, since the root filesystem is read-only at run time and
# PYTHONDONTWRITEBYTECODE keeps Python from trying later.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-index --find-links /wheels 'shorty[operator,s3]' \
    && /opt/venv/bin/pip uninstall --yes pip

# -------------------------------------------------- the PGDG archive signing key
# Debian's own postgresql-common package ships the key of apt.postgresql.org
# (PGDG); it is taken from the .deb, not fetched from the web.
FROM ${BASE} AS pgdg-key
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /key
# Only the key file is kept, whichever version of the package carries it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get download postgresql-common \
    && dpkg-deb --fsys-tarfile postgresql-common_*.deb \
       | tar -x --strip-components=5 ./usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
    && rm -rf /var/lib/apt/lists/* postgresql-common_*.deb

# ----------------------------------------------------------------------- final
FROM ${BASE}
# pg_dump/pg_restore for the backup CronJob, of the PostgreSQL server's major
# version: Debian bookworm ships 15, so version 16 comes from PGDG. PGDG=false
# takes Debian's own client instead, for builds without access to PGDG (the
# test build here sets PG_CLIENT=15 with it); such an image cannot dump a 16
# server, so it is never the one to ship.
ARG PG_CLIENT=16
ARG PGDG=true
COPY --from=pgdg-key /key/apt.postgresql.org.asc /usr/share/keyrings/pgdg.asc
# Versions of Debian's packages follow the base image's point release; pinning
# them would break the build at each security update.
# hadolint ignore=DL3008
RUN set -eu; \
    if [ "$PGDG" = true ]; then \
        . /etc/os-release; \
        printf 'Types: deb\nURIs: https://apt.postgresql.org/pub/repos/apt\nSuites: %s-pgdg\nComponents: main\nSigned-By: /usr/share/keyrings/pgdg.asc\n' \
            "$VERSION_CODENAME" > /etc/apt/sources.list.d/pgdg.sources; \
    fi; \
    apt-get update; \
    apt-get install --yes --no-install-recommends ca-certificates "postgresql-client-$PG_CLIENT"; \
    rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    groupadd --gid 10001 shorty; \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin shorty; \
    mkdir -p /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Nothing is written under the working directory: it stays root's and empty,
# and the pod's root filesystem read-only (only /tmp is an emptyDir). Made by
# the RUN above: not every builder makes a WORKDIR, and a runtime cannot on a
# read-only root.
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8080
LABEL org.opencontainers.image.title="shorty" \
      org.opencontainers.image.description="Shorty, a Kubernetes-native URL shortener" \
      org.opencontainers.image.licenses="Apache-2.0"
# Kubernetes probes /livez and /readyz on each service's own port: a Docker
# HEALTHCHECK would have to guess which service this container runs.
ENTRYPOINT ["shorty"]
CMD ["--help"]
