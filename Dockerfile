# syntax=docker/dockerfile:1
#
# Sluicegate container image.
#
#   docker build -t sluicegate .
#   docker run --rm -p 8080:8080 -p 9090:9090 --stop-timeout 30 sluicegate
#
# Data port 8080, admin port 9090 (/health/live, /health/ready, /metrics). Mount your own
# /etc/sluicegate/routes.yaml and /etc/sluicegate/settings.yaml (or the whole /etc/sluicegate directory).
# docs/operations.md ("Container") has ports, mounts, environment, signals and the health check.
#
# tests/e2e/test_container.py reads this file: it runs the builder's `pip wheel`, installs the wheels as the runtime
# stage does, and starts the exact ENTRYPOINT + CMD and HEALTHCHECK command. Keep those exec-form JSON arrays.

# Pinned by tag, the same base for both stages. Production should pin by digest too
# (python:3.13.13-slim-trixie@sha256:...) and let a bot such as Renovate or Dependabot move it.
ARG PYTHON_IMAGE=python:3.13.13-slim-trixie

# --- builder: the gateway's wheel and a wheel of every dependency --------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src
# Only what the wheel is built from, so an edit to tests or docs does not rebuild it.
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY filters/ filters/

# Every dependency ships manylinux wheels for this Python, so no compiler is needed here.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels .

# --- runtime: only the installed wheels, a non-root user, the default config ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/sluicegate \
    PATH=/opt/sluicegate/bin:$PATH

# A numeric UID/GID, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 sluicegate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin sluicegate

# The wheels are bind-mounted from the builder, so they never become a layer of this image. pip compiles the
# bytecode here, at install time; the gateway never writes any at run time (PYTHONDONTWRITEBYTECODE).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
 && pip install --no-cache-dir --no-index --find-links /wheels sluicegate

# Mountable config, owned by root, readable (not writable) by the gateway. The default routes are the shipped demo
# (an echo backend on the container's own loopback); the default settings are empty (every setting at its default).
# Precedence: defaults < settings.yaml < SLUICEGATE_* environment < flags (so the CMD's two listen flags win).
COPY routes.yaml /etc/sluicegate/routes.yaml
RUN printf '%s\n' '# Sluicegate settings (YAML); mount your own over this file. See docs/operations.md.' '{}' \
        > /etc/sluicegate/settings.yaml \
 && chmod 0644 /etc/sluicegate/routes.yaml /etc/sluicegate/settings.yaml

USER 10001:10001

# 8080: data port. 9090: admin port (health and metrics), bound on all interfaces inside the container.
EXPOSE 8080 9090

# The gateway's supervisor is PID 1 (exec form, no shell): SIGTERM reaches it, readiness turns false, it drains its
# workers and exits 0. Docker sends SIGKILL after 10 s by default, below the 20 s default drain timeout: run with
# --stop-timeout 30 (Kubernetes' default grace period is 30 s).
STOPSIGNAL SIGTERM

# Only what the slim image has: Python's urllib (proxies ignored), no curl. Exit 0 when ready; 1 (an exception)
# on 503, a refused connection or a timeout.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(0 if r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:9090/health/ready', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["sluicegate"]
CMD ["run", "--config", "/etc/sluicegate/routes.yaml", "--settings", "/etc/sluicegate/settings.yaml", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9090"]
