# mafalda-node in a container, built with the repository's own set-up.
#
#   docker build -t mafalda-node .
#   docker run -d --name mafalda --network host -v mafalda:/var/lib/mafalda \
#       mafalda-node run --listen /ip4/0.0.0.0/tcp/4001 --media-ip 192.0.2.10 \
#       --bootstrap /dns4/seed.example.org/tcp/4001/p2p/12D3KooW...
#
# Host networking: media uses UDP ports picked at run time from --rtc-ports
# (40000-49999) and pipes announce the media IP to other nodes, which
# Docker's port mapping would hide. Every `mafalda-node run` flag (or its
# MAFALDA_* variable) works as on a host; the identity key stays in the
# volume, logs are JSON lines (`docker logs`), `docker stop` drains (give it
# `--time 45`: SIGTERM waits up to --drain-timeout, 30 s).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The build packages and PyPI tools a developer's machine gets (the mediasoup
# worker is built offline from the vendored crate), then the release binary.
RUN ./scripts/setup.sh --node-only \
 && cargo build --release --locked -p mafalda-cli \
 && install -D target/release/mafalda-node /out/mafalda-node

FROM debian:bookworm-slim
# The binary's shared libraries beyond libc (checked by cli/tests/deploy.rs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnss3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/mafalda mafalda
COPY --from=build /out/mafalda-node /usr/local/bin/mafalda-node
USER mafalda
WORKDIR /var/lib/mafalda
VOLUME /var/lib/mafalda
ENV MAFALDA_IDENTITY=/var/lib/mafalda/node.key \
    MAFALDA_LOG_FORMAT=json
EXPOSE 4001/tcp 7700/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["mafalda-node"]
CMD ["run", "--listen", "/ip4/0.0.0.0/tcp/4001"]
