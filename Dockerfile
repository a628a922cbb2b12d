# One image for the four services: `python -m services.<name>` picks the service.
FROM python:3.11-slim AS build
WORKDIR /src
COPY contracts/ contracts/
COPY pyproject.toml README.md ./
COPY services/ services/
RUN pip install --no-cache-dir --prefix=/install ./contracts . 

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app alfi
COPY --from=build /install /usr/local
WORKDIR /app
COPY --chown=alfi services/ services/
USER alfi
ENV ALFI_HTTP_HOST=0.0.0.0 ALFI_LOG_FORMAT=json PYTHONUNBUFFERED=1
# Each service's port and module are given by docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=3s --retries=6 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"ALFI_HTTP_PORT\"]}/health/ready', timeout=2)"
