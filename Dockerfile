FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
COPY requirements.lock ./
# Everything is installed hash-checked from the lock except torch, whose locked hash is the CPU
# wheel our build machines carry; in the image it comes from the registry at the same version.
RUN sed '/^torch==/,+1d' requirements.lock > /tmp/req.lock \
 && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/req.lock \
 && pip install --no-cache-dir --no-deps torch==2.13.0
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
RUN useradd --system --uid 10001 bulkhead && mkdir -p /app/data && chown bulkhead /app/data
USER bulkhead
EXPOSE 8080
CMD ["sh", "-c", "bulkhead migrate && bulkhead serve --host 0.0.0.0 --port 8080"]
