# The Python base every app image builds on: a virtualenv with the libraries the apps use.
# pip reaches PyPI over HTTPS; behind a TLS-intercepting proxy that works because envctl
# installs the host's CA bundle in the os base (trust_host_ca).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check redis==5.2.1
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONUNBUFFERED=1
