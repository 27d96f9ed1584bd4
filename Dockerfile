# The service alone; Postgres and Kafka come from the environment (see compose.yaml).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
RUN pip install --no-cache-dir ./contracts . && useradd --system --no-create-home service

USER service
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=2)"
CMD ["order-service", "serve"]
