"""shoplib: what every service of the reference shop shares (HTTP, config, database, cache).

Installed in the `python` base image, so each service is only its own handlers.
"""
