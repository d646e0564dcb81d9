# The hub's image: one `onewindow` binary with the topic catalog and the connector files.
# Used by compose.yaml for every hub process (topics job, connectors, department simulators).
FROM swift:6.2-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librdkafka-dev libsqlite3-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# Every target of the manifest must exist for SwiftPM to load it, test targets included.
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
RUN swift build -c release --product onewindow --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/onewindow" /usr/local/bin/onewindow

# Runtime: the binary links the Swift runtime statically, but not the system libraries it uses:
# librdkafka, SQLite, and, for FoundationNetworking (URLSession), libcurl; CA
# certificates for TLS to brokers; tzdata for time zones.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libsqlite3-0 ca-certificates tzdata libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app onewindow
COPY --from=build /usr/local/bin/onewindow /usr/local/bin/onewindow
WORKDIR /app
COPY Topics ./Topics
COPY Connectors ./Connectors
# The working-day calendar (dept-sim --decide) and the orchestrator's rules.
COPY Rules ./Rules
RUN mkdir -p /app/var && chown onewindow /app/var
USER onewindow
ENTRYPOINT ["onewindow"]
CMD ["--help"]
