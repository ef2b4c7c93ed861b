# contentforge: one image for migrate, worker and scheduler (see compose.yaml).
#
#   docker build -t contentforge .          # worker, scheduler, S3: faster-whisper transcripts
#   docker build -t contentforge:whisper --build-arg EXTRAS=worker,scheduler,s3,whisper .   # + openai-whisper on CPU torch
#
# Plain RUN lines only (no BuildKit heredocs, no `# syntax=` image to pull): builds with the
# classic builder of any engine, Debian bookworm's docker.io 20.10 included.
#
# Layers, from least to most often changed:
#   runtime OS packages (ffmpeg, espeak-ng, tini)              changes with this file
#   /opt/venv: every dependency, no project code (~650 MB)     changes with pyproject.toml only
#   the project's wheel, installed with --no-deps (~1.3 MB)  changes with every code edit

ARG PYTHON_VERSION=3.11

# ---- deps: a virtualenv with every dependency and nothing of ours ----------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
ARG EXTRAS="worker,scheduler,s3"
# openai-whisper needs torch; take PyTorch's CPU wheels (a plain `torch` pulls gigabytes of CUDA).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Only pyproject.toml and the script that reads it: this layer is reused until they change.
COPY pyproject.toml ./
COPY scripts/requirements-from-pyproject ./scripts/
RUN python scripts/requirements-from-pyproject pyproject.toml "$EXTRAS" > /tmp/requirements.txt \
 && cat /tmp/requirements.txt
RUN if grep -q '^torch' /tmp/requirements.txt; then \
      pip install --index-url "$TORCH_INDEX_URL" "$(grep '^torch' /tmp/requirements.txt)"; \
    fi \
 && pip install -r /tmp/requirements.txt

# ---- wheel: the project alone, built from the source --------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The build backend in a cached layer of its own, so a code edit does not download it again.
RUN python -m venv /opt/build && /opt/build/bin/pip install "setuptools>=77" wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contentforge ./contentforge
COPY schema ./schema
COPY jobs ./jobs
COPY workers ./workers
COPY scheduler ./scheduler
COPY cli ./cli
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# ---- runtime: slim, ffmpeg, espeak-ng, non-root ---------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# ffmpeg/ffprobe for transcodes, posters and probing; espeak-ng so the generated sample media
# (`contentforge process` with no files) carry real speech; tini reaps ffmpeg children and
# forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg espeak-ng tini \
 && rm -rf /var/lib/apt/lists/*
# A real, writable home: model caches (faster-whisper, openai-whisper, Hugging Face) go under
# $HOME/.cache, and the data directory lives beside it.
RUN groupadd --system --gid 10001 contentforge \
 && useradd --system --uid 10001 --gid contentforge --create-home --home-dir /home/contentforge \
      --shell /usr/sbin/nologin contentforge \
 && mkdir -p /app/data /home/contentforge/.cache \
 && chown contentforge:contentforge /app/data /home/contentforge/.cache
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/contentforge \
    XDG_CACHE_HOME=/home/contentforge/.cache \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONTENTFORGE_LOG_FORMAT=json \
    CONTENTFORGE_DATA_DIR=/app/data
# The dependencies: one large layer, identical until pyproject.toml changes.
COPY --from=deps /opt/venv /opt/venv
# The project: a small layer per code change.
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels
WORKDIR /app
USER contentforge
# Prometheus metrics of `contentforge worker`.
EXPOSE 9191
ENTRYPOINT ["tini", "--", "contentforge"]
CMD ["--help"]
