# otlp-router container image.
#   docker build -t otlp-router .
#   docker run -d --name otlp-router -p 4317:4317 -p 4318:4318 -p 127.0.0.1:8888:8888 \
#     -v otlp-router-data:/var/lib/otlp-router otlp-router
# The configuration is deploy/router.yaml, at /etc/otlp-router/router.yaml in the
# image; mount your own there (read-only). See README.md, "Running it as a service".

# Build stage: the package's wheel, with its Rust core (native/, built by maturin, the build
# backend pyproject.toml names). The toolchain stays in this stage; the image gets the wheel.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/root/.cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
 && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md LICENSE /src/
COPY native /src/native
COPY otlp_router /src/otlp_router
RUN pip wheel --no-deps --wheel-dir /wheels /src

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# A system user without a login; numeric so that runAsNonRoot can check it.
RUN groupadd --system --gid 10001 otlp-router \
 && useradd --system --uid 10001 --gid otlp-router --home-dir /var/lib/otlp-router --no-create-home \
            --shell /usr/sbin/nologin otlp-router \
 && install -d -o otlp-router -g otlp-router -m 0750 /var/lib/otlp-router

COPY deploy/router.yaml /etc/otlp-router/router.yaml

# The spool (and the default file destinations): keep it across containers.
VOLUME ["/var/lib/otlp-router"]
WORKDIR /var/lib/otlp-router
USER 10001:10001

# OTLP/gRPC, OTLP/HTTP, admin (/healthz, /readyz, /metrics, status page)
EXPOSE 4317 4318 8888

# Slim images have no curl. /healthz needs no admin token.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8888/healthz', timeout=4).status != 200)"]

# SIGTERM drains within shutdown_timeout (8 s in deploy/router.yaml; docker stop waits 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["otlp-router"]
CMD ["run", "-c", "/etc/otlp-router/router.yaml"]
