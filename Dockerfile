# syntax=docker/dockerfile:1
# The speech server's image. The web server (uvicorn) and the Celery worker both run from it;
# docker-compose.yml says how. Nothing secret is baked in: HF_TOKEN, SECRET_KEY and the rest
# come from the environment (.env) when a container starts.
#
# CUDA and torch. torch==2.13.0 from PyPI (the pin in requirements.txt) is already a CUDA 13.0
# build on Linux x86-64: its wheel pulls NVIDIA's CUDA libraries (cuBLAS, cuDNN, NCCL, ...) in
# as pip packages and loads those. So the image installs exactly requirements.txt, and its base
# is NVIDIA's smallest CUDA image ("base": the CUDA runtime core and the variables with which
# the NVIDIA Container Toolkit hands the GPU and the host's driver to the container, refusing a
# driver too old for its CUDA version); the "runtime" image would only add a second copy of
# the libraries torch brings. A host whose driver is older than CUDA 13 (below 580) builds
# with CUDA 12 instead, from PyTorch's own index, same torch version (pick a CUDA version that
# index has for 2.13.0; cu128 here):
#   docker build --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04 \
#                --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# Without a GPU the same image runs on the CPU (eSpeak NG, or CSM slowly).
#
# Where no registry can be reached, build arguments swap the downloads for local stand-ins
# (tests/deploy/test_image.py and `make image-check` build and run the image that way, on a
# Debian base made by deploy/image/base-images.sh): CUDA_IMAGE and UV_IMAGE name other images,
# PYTHON_SOURCE=system takes the base's own python3.11, TORCH_INDEX_URL an index of local wheels.
# The defaults below are the real build.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# --- build: Python 3.11 and the dependencies, in /opt; nothing of this stage but those ships ---
FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# The Python the project is tested on (3.11), a relocatable build that uv installs; Ubuntu's
# own is 3.12. PYTHON_SOURCE=system instead uses the base image's python3.11 (Debian bookworm's,
# for one), which the final stage then has too: /opt/python stays empty.
ARG PYTHON_SOURCE=managed
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv
RUN if [ "$PYTHON_SOURCE" = system ]; then \
        mkdir -p /opt/python \
        && uv venv --python-preference only-system --python 3.11 /opt/venv; \
    else \
        uv python install 3.11 && uv venv --python 3.11 /opt/venv; \
    fi
# Empty: torch comes from PyPI with the rest. Else PyTorch's index for another CUDA version
# (the installed 2.13.0+cuXXX then satisfies requirements.txt's torch==2.13.0). uv takes each
# package from the first index that has it: torch from this one, what it lacks from PyPI.
ARG TORCH_INDEX_URL=
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        uv pip install "torch==2.13.0" --extra-index-url "$TORCH_INDEX_URL"; \
    fi
COPY requirements.txt /tmp/requirements.txt
RUN uv pip install -r /tmp/requirements.txt

# --- the image ---------------------------------------------------------------------------------
FROM ${CUDA_IMAGE}
# A C++ compiler: torch.compile builds the captured CSM frame step with it (inductor's C++ on a
# CPU, Triton's launchers on a GPU). Python's headers come with uv's Python; a system Python
# needs its -dev package.
ARG PYTHON_SOURCE=managed
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates g++ \
    && if [ "$PYTHON_SOURCE" = system ]; then \
        apt-get install -y --no-install-recommends python3.11-dev; \
    fi \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
# Model downloads (Hugging Face: CSM; Whisper; AudioSeal) go under /cache, stored voices under
# /data/media: docker-compose.yml puts named volumes on both.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/cache \
    HF_HOME=/cache/huggingface \
    MEDIA_ROOT=/data/media
WORKDIR /app
# The code belongs to root and is only read; the server user writes to var/ (a generated secret
# key when SECRET_KEY is unset), the caches and the media folder.
COPY . .
# A throw-away key: collectstatic must not generate (and so bake in) a real one.
RUN SECRET_KEY=collectstatic-only-not-a-real-secret-key-000 \
        python manage.py collectstatic --noinput -v0 \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin csm \
    && mkdir -p /app/var /cache /data/media \
    && chown csm:csm /app/var /cache /data/media
USER csm
EXPOSE 8000
# Liveness: /healthz answers (with a Host header from ALLOWED_HOSTS; see core/healthcheck.py).
# The worker's container has its own check in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/core/healthcheck.py"]
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py ensure_admin && exec python manage.py serve --host 0.0.0.0 --port 8000"]
