# The gala image for `gala swarm` (k8s/ holds the manifests): the Locust master (gala's runner) and its workers.
# Everything is installed at build time; nothing is pip-installed when a pod starts, and the pods
# run it as a numeric non-root user on a read-only root filesystem (/tmp and /results are emptyDirs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gala ./gala
COPY loadtests ./loadtests
COPY capacity_model ./capacity_model
# A stable path to the installed locustfile for the workers' `locust -f` (k8s/base/worker-job.yaml).
RUN pip install . \
 && mkdir -p /opt/gala \
 && ln -s "$(python -c 'import loadtests, os; print(os.path.dirname(loadtests.__file__))')/locustfile.py" /opt/gala/locustfile.py \
 && test -f /opt/gala/locustfile.py \
 && python -c "import loadtests.swarm.entrypoint, locust, gala.cli" \
 && groupadd --gid 10001 gala \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin gala \
 && rm -rf /src

USER 10001:10001
WORKDIR /tmp
EXPOSE 5557
ENTRYPOINT []
CMD ["gala", "--help"]
