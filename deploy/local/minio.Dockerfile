# MinIO built from source at the same pinned version as the local stack
# (streamgen/local/minio.py: MINIO_VERSION). MinIO publishes the community edition as source
# only, so building it is the one way to get the same server in both stacks.
FROM golang:1.26-bookworm AS build
ARG MINIO_VERSION
RUN test -n "$MINIO_VERSION" \
 && CGO_ENABLED=0 GOBIN=/out go install "github.com/minio/minio@${MINIO_VERSION}"

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/minio /usr/local/bin/minio
ENTRYPOINT ["minio"]
