# The operator's image: `hybrid-scheduler run`, as the Helm chart's Deployment runs it.
#   docker build -t hybrid-scheduler:0.1.0 .
# Two stages: the first builds a virtualenv with CPU-only torch (the DQN scorer needs no
# GPU) and the project; the second copies only that virtualenv onto a slim Python and runs
# it as an unprivileged user with a numeric UID (the chart's runAsNonRoot can check it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/hybrid-scheduler/bin:$PATH
RUN python -m venv /opt/hybrid-scheduler
# CPU wheels of torch first, so that installing the project never pulls the CUDA ones.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policy ./policy
COPY operator ./operator
# The tooling root (lab/) is not copied: the image carries neither it nor its libraries.
RUN pip install . && hybrid-scheduler --version

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 hybrid \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin hybrid
COPY --from=build /opt/hybrid-scheduler /opt/hybrid-scheduler
# The chart mounts the root filesystem read-only and an emptyDir at /tmp.
ENV PATH=/opt/hybrid-scheduler/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
# /metrics, /healthz, /readyz; the admission webhook.
EXPOSE 8080 9443
ENTRYPOINT ["hybrid-scheduler"]
CMD ["run", "--config", "/etc/hybrid-scheduler/settings.yaml"]
