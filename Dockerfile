# syntax=docker/dockerfile:1
# The dimwatch server. docs/deployment.md explains every choice and what was tested.
#
#   CPU (default):  docker build -t dimwatch .
#   NVIDIA GPU:     docker build -t dimwatch:cuda --build-arg VARIANT=cuda .
#
# Both variants install the project exactly as docs/deployment.md documents: first torch (pinned as
# in pyproject.toml) from the PyTorch index of the variant, then the project with its server and
# cluster extras: `pip install --no-cache-dir ".[server,cluster]"` (nothing of test or bench).

ARG VARIANT=cpu
# The CUDA variant only needs the driver hooks of NVIDIA's "base" image: the CUDA torch wheel brings
# its own CUDA libraries. Pick a CUDA release that the wheel index below publishes torch for.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
ARG CUDA_TORCH_INDEX=https://download.pytorch.org/whl/cu128

# ---- interpreters: one per variant; BuildKit builds only the one VARIANT selects ----------------

FROM python:3.11-slim AS python-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM ${CUDA_IMAGE} AS python-cuda
ARG CUDA_TORCH_INDEX
ENV TORCH_INDEX_URL=${CUDA_TORCH_INDEX}
# Ubuntu 24.04 ships Python 3.12 (the project needs >= 3.11); no compilers, apt lists removed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python

FROM python-${VARIANT} AS python

# ---- build: a virtual environment with dimwatch and its dependencies ---------------------------

FROM python AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# torch first, in its own layer: it is by far the largest download and changes least often.
COPY pyproject.toml README.md LICENSE ./
RUN pip install --no-cache-dir "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
COPY streaming ./streaming
COPY service ./service
COPY clients ./clients
RUN pip install --no-cache-dir ".[server,cluster]" \
    && pip uninstall -y pip setuptools

# ---- runtime: the environment only; no sources, compilers, pip or caches -----------------------

FROM python AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIMWATCH_DATA_DIR=/data
RUN useradd --system --create-home --uid 10001 --user-group dimwatch \
    && mkdir /data \
    && chown dimwatch:dimwatch /data
COPY --from=build /opt/venv /opt/venv
USER dimwatch
WORKDIR /home/dimwatch
# Streams, batches and snapshots (SQLite) live here; a new named volume inherits the ownership.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["dimwatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
