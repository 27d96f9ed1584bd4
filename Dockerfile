# The service alone; Postgres and Kafka come from the environment (see compose.yaml).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
RUN pip install --no-cache-dir ./contracts . \
    && groupadd --system --gid 10001 service \
    && useradd --system --uid 10001 --gid 10001 --no-create-home service

# A number, not a name: Kubernetes' runAsNonRoot can only check a numeric user.
USER 10001
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=2)"
CMD ["order-service", "serve"]
