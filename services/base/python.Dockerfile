# The Python base every app image builds on: a virtualenv with the libraries the services
# use, and shoplib, their shared code. pip reaches PyPI over HTTPS; behind a TLS-intercepting
# proxy that works because envctl installs the host's CA bundle in the os base.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "psycopg[binary]==3.2.3" "redis==5.2.1"
COPY shoplib /opt/shoplib/shoplib
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/shoplib PYTHONUNBUFFERED=1
