# The application image: web (uvicorn), worker and beat (Celery) and migrate all run it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Dependencies first: a code change then rebuilds only the layers below.
COPY pyproject.toml ./
RUN pip install .

COPY . .
RUN useradd --system --no-create-home app \
    && mkdir -p /srv/static \
    && chown app /srv/static

USER app
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets", "--lifespan", "off", "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log", "--timeout-keep-alive", "75"]
