# The streamgen image: `streamgen worker`, `streamgen topics create`, and every other command.
# torch from PyPI bundles its CUDA runtime; the host's NVIDIA driver comes in through the
# container toolkit when the service reserves a GPU (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streamgen ./streamgen
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /work
ENTRYPOINT ["streamgen"]
