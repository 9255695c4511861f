# AgentRoll webhook image. There is no container engine in the development environment, so this
# file is kept small enough to review by eye; the chart's default image is built from it.
#   docker build -t ghcr.io/agentroll/agentroll-webhook:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# --- build: wheels for the package and its dependencies (build tools live only here) ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY kubectl_agentroll ./kubectl_agentroll
COPY webhook ./webhook
RUN python -m venv /venv \
 && /venv/bin/pip install --upgrade pip \
 && /venv/bin/pip install . \
 && /venv/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: the virtualenv only, as a non-root user -------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 agentroll \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin agentroll \
 && rm -rf /usr/local/lib/python3.11/site-packages/pip* /usr/local/bin/pip*
COPY --from=build /venv /venv
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["agentroll-webhook"]
CMD ["serve", "--tls-cert-file=/etc/agentroll/tls/tls.crt", "--tls-private-key-file=/etc/agentroll/tls/tls.key"]
