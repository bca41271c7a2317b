FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 PORT=5000 DATA_DIR=/data

WORKDIR /app
# tini as PID 1 forwards SIGTERM to the service and reaps children, so `docker stop` is quick.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
# The CPU-only torch build first, so requirements.txt's torch==2.13.0 is already satisfied
# and no CUDA packages are pulled in; the pinned dependencies in their own layer (without the
# project's own `-e .` line), so a code change does not reinstall them.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && grep -v '^-e ' requirements.txt > /tmp/pins.txt && pip install -r /tmp/pins.txt

COPY pyproject.toml README.md ./
COPY backend/ backend/
COPY frontend/ frontend/
COPY .env.example .
# The project itself, editable: it runs from /app, beside its frontend/ and weights.
RUN pip install --no-deps -e .

RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
USER app
VOLUME /data
EXPOSE 5000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=4)"

# gunicorn with gthread workers (backend/gunicorn.conf.py; WEB_CONCURRENCY, THREADS); SIGTERM
# from `docker stop`, forwarded by tini, lets requests in flight finish within GRACEFUL_TIMEOUT_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "--config", "backend/gunicorn.conf.py", "backend.app:create_app()"]
