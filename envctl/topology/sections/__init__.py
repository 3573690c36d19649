"""The parsers of `envctl.yaml`'s sections, one module per section (each reads with `readers.Reader`).

    name, registry, cache, secrets      project.py
    bases:                              bases.py
    services:   image, build, base, command, depends_on, stop_*, pull_policy, ...   services.py
                environment, env_file   environment.py
                ports                   ports.py
                volumes (mounts)        volumes.py
                healthcheck, probe      health.py
                restart, networks, deploy, labels, ... (Compose's runtime keys)    ../compose_keys.py
    mocks:                              mocks.py
    networks:, configs:, volumes: (top level)                                      ../compose_keys.py

`../loader.py` runs them in turn; `../crossref.py` then checks what names what.
"""
