FROM python:3.11-slim
WORKDIR /app
# State (the server secret when BULKHEAD_SECRET is unset, the audit signing key and checkpoints, the
# audit spool, an embedded database) lives in BULKHEAD_DATA_DIR, a volume; /app is the code and the
# demo model, rebuilt with the image.
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True \
    BULKHEAD_DATA_DIR=/var/lib/bulkhead
COPY requirements.lock ./
# Everything is installed hash-checked from the lock except torch, whose locked hash is the CPU
# wheel our build machines carry; in the image it comes from the registry at the same version.
RUN sed '/^torch==/,+1d' requirements.lock > /tmp/req.lock \
 && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/req.lock \
 && pip install --no-cache-dir --no-deps torch==2.13.0
# The demo model policies/default.yaml names (local-moe, model_dir data/demo-moe), trained as
# `make run` trains it; its own layer, rebuilt only when local_moe/ changes (minutes on one core).
COPY local_moe ./local_moe
RUN python -m local_moe.cli train-demo --out data/demo-moe
# .dockerignore keeps data/ (secrets, keys, databases), .venv and the rest of the checkout's own out.
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
# local_moe's native decode kernels (local_moe/native.py), built for each x86-64 level into
# local_moe/prebuilt: the running image has no compiler, and loads the variant its CPU can run. The
# compiler is installed and removed in this one layer, so it never ships.
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
 && bulkhead moe build-kernels \
 && apt-get purge -y --auto-remove g++ && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 bulkhead && mkdir -p /var/lib/bulkhead && chown bulkhead /var/lib/bulkhead
VOLUME /var/lib/bulkhead
# The system user has no home: local_moe's per-machine kernel choices (local_moe/kernels.py) are
# cached on the data volume, so a restarted container does not time its kernels again.
ENV XDG_CACHE_HOME=/var/lib/bulkhead/cache
USER bulkhead
EXPOSE 8080
CMD ["sh", "-c", "bulkhead migrate && bulkhead serve --host 0.0.0.0 --port 8080"]
