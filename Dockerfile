# The dimwatch server. docs/deployment.md explains every choice and what was tested.
#
#   CPU (default):  docker build -t dimwatch .
#   NVIDIA GPU:     docker build -t dimwatch:cuda \
#                       --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04 \
#                       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#   No registry:    deploy/debian-base.sh makes dimwatch-base:bookworm (debootstrap), then
#                   docker build --network=host --build-arg BASE_IMAGE=dimwatch-base:bookworm \
#                       --build-arg TORCH_INDEX_URL=URL --build-arg PIP_INDEX_URL=URL -t dimwatch .
#                   with URL a local index of the wheels (tests/test_container.py makes one).
#
# Both the classic builder and BuildKit build it, fetching nothing but the base and the wheels:
# no "syntax" line (BuildKit would fetch that frontend from a registry), and one base stage (the
# classic builder builds every stage of the file, so an unused stage's image would be pulled).
# The install is the one docs/deployment.md documents: first torch (pinned as in pyproject.toml)
# from TORCH_INDEX_URL, then the project with its server and cluster extras:
# `pip install --no-cache-dir ".[server,cluster]"` (nothing of test or bench).

# Any image with Python >= 3.11 (python on PATH), or a Debian/Ubuntu image that gets it below.
ARG BASE_IMAGE=python:3.11-slim

# ---- interpreter: the base, with python3 and venv from apt if it has no Python ------------------

FROM ${BASE_IMAGE} AS python
RUN command -v python >/dev/null 2>&1 || { apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python; }

# ---- build: a virtual environment with dimwatch and its dependencies ---------------------------

FROM python AS build
# The PyTorch index of the wheel's kind: CPU by default (PyPI's Linux torch is the CUDA build).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip's own variable, unset by default: another index for everything else (a mirror, or a local
# one when the build has no route to the registry: docs/deployment.md).
ARG PIP_INDEX_URL
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
# DIMWATCH_HOST and DIMWATCH_PORT are read by `dimwatch serve` and by the health check alike, so
# a container on the host's network (--network=host) can take another port and stay checked.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIMWATCH_DATA_DIR=/data \
    DIMWATCH_HOST=0.0.0.0 \
    DIMWATCH_PORT=8000
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
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DIMWATCH_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["dimwatch", "serve"]
