# syntax=docker/dockerfile:1
# The torghut engine image: the package and its pinned dependencies in a virtualenv, run as a non-root user.
#   docker build -t torghut-engine:0.1.0 .
# The build context is filtered by .dockerignore down to what is COPY'd below.
# The entrypoint (deploy/docker/entrypoint.sh) derives the bytewax cluster from the StatefulSet pod's
# POD_NAME, POD_NAMESPACE and TORGHUT_REPLICAS and refuses to start without them; outside Kubernetes, run
# the engine directly: docker run --entrypoint torghut IMAGE run --config ...

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/torghut
WORKDIR /src
COPY pyproject.toml README.md ./
COPY torghut ./torghut
RUN /opt/torghut/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/torghut/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 torghut \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/torghut --create-home torghut \
    && mkdir -p /var/lib/torghut/recovery /etc/torghut \
    && chown -R 10001:10001 /var/lib/torghut
COPY --from=build /opt/torghut /opt/torghut
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/torghut-entrypoint
USER 10001:10001
WORKDIR /var/lib/torghut
# 2101: bytewax cluster traffic between processes; 9464: Prometheus /metrics.
EXPOSE 2101 9464
ENTRYPOINT ["torghut-entrypoint"]
CMD ["torghut", "run", "--config", "/etc/torghut/engine.yaml", "--metrics-address", "0.0.0.0:9464"]
