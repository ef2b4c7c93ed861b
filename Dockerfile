# syntax=docker/dockerfile:1.7
# contentforge: one image for migrate, worker and scheduler (see compose.yaml).
#
#   docker build -t contentforge .          # worker, scheduler, S3: faster-whisper transcripts
#   docker build -t contentforge:whisper --build-arg EXTRAS=worker,scheduler,s3,whisper .   # + openai-whisper on CPU torch
#
# Layers are ordered from least to most often changed: OS packages, Python dependencies (only
# re-installed when pyproject.toml changes), then our source.

ARG PYTHON_VERSION=3.11

# ---- build: a virtualenv with every dependency, compiled where needed -------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first: this layer is reused until pyproject.toml changes.
ARG EXTRAS="worker,scheduler,s3"
# openai-whisper needs torch; take PyTorch's CPU wheels (a plain `torch` pulls gigabytes of CUDA).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
RUN python - <<'PY' > /tmp/requirements.txt
import os, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
def expand(names):  # an extra may name others as contentforge[a,b]
    for name in names:
        for dep in extras[name]:
            if dep.startswith("contentforge["):
                yield from expand(dep[len("contentforge["):-1].split(","))
            else:
                yield dep
deps = list(project["dependencies"]) + list(expand(filter(None, os.environ.get("EXTRAS", "").split(","))))
print("\n".join(deps))
PY
RUN if grep -q '^torch' /tmp/requirements.txt; then \
      pip install --index-url "$TORCH_INDEX_URL" "$(grep '^torch' /tmp/requirements.txt)"; \
    fi \
 && pip install -r /tmp/requirements.txt

# Our source last: editing code rebuilds only this layer.
COPY README.md ./
COPY contentforge ./contentforge
COPY schema ./schema
COPY jobs ./jobs
COPY workers ./workers
COPY scheduler ./scheduler
COPY cli ./cli
RUN pip install --no-deps .

# ---- runtime: slim, ffmpeg, non-root -----------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# ffmpeg/ffprobe for transcodes, posters and probing; tini reaps ffmpeg children and forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 contentforge \
 && useradd --system --uid 10001 --gid contentforge --home-dir /app --shell /usr/sbin/nologin contentforge
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONTENTFORGE_LOG_FORMAT=json \
    CONTENTFORGE_DATA_DIR=/app/data
WORKDIR /app
RUN mkdir -p /app/data && chown contentforge:contentforge /app/data
USER contentforge
# Prometheus metrics of `contentforge worker`.
EXPOSE 9191
ENTRYPOINT ["tini", "--", "contentforge"]
CMD ["--help"]
