# Same image recipe as the original guide: python:3.11-slim serving on port 7860.
FROM python:3.11-slim

# CPU-only torch by default (about 200 MB instead of gigabytes of CUDA libraries). For a GPU image:
#   docker build --build-arg TORCH_VARIANT=cu128 .
# (any wheel index name on download.pytorch.org/whl, e.g. cu126, cu128).
ARG TORCH_VARIANT=cpu

WORKDIR /app
# No DATA_DIR: it defaults to the Space's persistent storage (/data) when the Space has it, else /app/data
# (core/data_place.py), and system_status.database.storage says which.
ENV PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False PORT=7860 LOG_FILE=/app/logs/server.log \
    HF_HOME=/app/.cache/huggingface

# The app runs as `hub`, which owns only what it writes: the data, the logs and the HF cache.
RUN useradd --create-home hub && mkdir -p /app/data /app/logs /app/.cache \
    && chown hub /app /app/data /app/logs /app/.cache

COPY requirements.txt .
# Torch first, from the variant's index; requirements.txt's `torch==2.13.0` then keeps that build
# (a CPU image gets the same build from requirements.txt's own CPU index line anyway).
RUN TORCH_PIN="$(grep -E '^torch==' requirements.txt)" \
    && pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" "${TORCH_PIN}" \
    && pip install --no-cache-dir -r requirements.txt

# Owned by `hub` as copied: a recursive chown afterwards would add a layer holding every file, models
# included, a second time. The project is not pip-installed: `python app.py` runs the tree in /app, and
# core/version.py reads the version from the pyproject.toml copied with it.
COPY --chown=hub . .
USER hub
# The default models' files are fetched now, only those loading reads, so a start downloads nothing:
# on a CPU image the embedded model's encoder (pinned commit, checked digest), on a CUDA image every
# catalog model; `--build-arg MODELS=a,b` names others. inference/models.lock.json has no entries yet,
# so hub models are unpinned: fetched at the hub's main, files unchecked (docs/inference.md, "The model lock").
ARG MODELS=
RUN MODELS="${MODELS}" python -m inference.fetch --device "$([ "${TORCH_VARIANT}" = cpu ] && echo cpu || echo cuda)"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"7860\")}/health')"
CMD ["python", "app.py"]
