# latchkey's container image: the single binary (docs/binary.md) on a distroless
# C++ base, run as 65532:65532, data in the /data volume.
#
#   docker build -t latchkey .                       # builds the binary in a node stage, then the image
#   npm run build:binary && docker build --build-arg BINARY=prebuilt -t latchkey .
#                                                    # copies this checkout's dist/latchkey instead
#
# The base, gcr.io/distroless/cc-debian12:nonroot, is glibc, libstdc++ and
# libgcc of Debian 12, CA certificates and time zones, about 20 MB: exactly
# what the binary links against (a copy of the official Node build, plus the
# better-sqlite3 and argon2 addons), and no shell, package manager or other
# program. The binary needs glibc (Node's official Linux builds are not musl),
# and it must have been built against a glibc no newer than the base's (2.36):
# the build stage below is Debian 12 like the base. debian:bookworm-slim would
# work as well, with a shell, apt and dpkg that nothing here needs (about
# 75 MB); distroless's `nonroot` user is the 65532 the image runs as.
#
# Docker 23 or newer (BuildKit: COPY --chmod, unused stages skipped) or Podman
# (`podman build --format docker`: the OCI format has no HEALTHCHECK).
#
# Every step is FROM, COPY, ENV, USER, EXPOSE, LABEL, VOLUME, WORKDIR, STOPSIGNAL,
# HEALTHCHECK or ENTRYPOINT/CMD, except the RUN steps of the `source` stage,
# which only BINARY=source (the default) builds. CI's machine cannot run RUN
# steps: it builds with BINARY=prebuilt, after `npm run build:binary` on
# Debian 12, with Podman and a base made from Debian's packages
# (.ci/container-base; test/container.e2e.ts).

ARG BASE=gcr.io/distroless/cc-debian12:nonroot
# The Node that the binary is made of; .nvmrc names the same (CI checks that).
ARG NODE_VERSION=24.22.3
# Where the binary comes from: `source` (built in the stage below) or
# `prebuilt` (dist/latchkey of the build context).
ARG BINARY=source

# The binary built from this checkout's sources, on Debian 12 like the base.
FROM docker.io/library/node:${NODE_VERSION}-bookworm AS source
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build:binary && mkdir /out && cp dist/latchkey /out/latchkey

# The binary that `npm run build:binary` made in the build context.
FROM scratch AS prebuilt
COPY dist/latchkey /out/latchkey

FROM ${BINARY} AS binary

FROM ${BASE}
ARG BASE
# The version of package.json (CI checks that they agree).
ARG VERSION=0.1.0
# Where the source is published; latchkey has no public URL yet, so pass it:
# --build-arg SOURCE_URL=https://...
ARG SOURCE_URL=
LABEL org.opencontainers.image.title="latchkey" \
      org.opencontainers.image.description="Self-hosted authentication server: sign-up, login, JWT access tokens, rotating refresh tokens, sessions" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.base.name="${BASE}"

COPY --from=binary --chown=0:0 --chmod=0555 /out/latchkey /usr/local/bin/latchkey
# The base's two directories that 65532 could write, /tmp and /home/nonroot,
# made read-only: the user writes /data and nothing else. (Each folder of
# deploy/image holds only a .gitkeep, which .dockerignore leaves out.)
COPY --chown=0:0 --chmod=0555 deploy/image/read-only/ /
# /data, 0700 and the user's: a named volume mounted there starts as a copy.
COPY --chown=65532:65532 --chmod=0700 deploy/image/data-volume/ /

ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    LATCHKEY_NATIVE_CACHE_DIR=/data/native-cache \
    SQLITE_TMPDIR=/data \
    NODE_OPTIONS=--max-semi-space-size=4
# LATCHKEY_NATIVE_CACHE_DIR: the binary unpacks its native addons (4.6 MiB) and
# loads them from there, so it must be writable and allow executables: the
# volume does, a read-only root filesystem does not. SQLITE_TMPDIR: SQLite's
# temporary files (large sorts, VACUUM). NODE_OPTIONS: V8's young generation at
# 4 MiB a half, as `npm start` and deploy/latchkey.service run it.

VOLUME /data
WORKDIR /
USER 65532:65532
EXPOSE 3000
# SIGTERM: stop accepting, finish in-flight requests (at most 30 s), close the
# database, exit 0. Give it the time: docker run --stop-timeout 40, or compose's
# stop_grace_period.
STOPSIGNAL SIGTERM
# No curl and no shell here: the binary asks /ready itself. With another PORT,
# override the check: latchkey healthcheck http://127.0.0.1:<PORT>/ready
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/latchkey", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
