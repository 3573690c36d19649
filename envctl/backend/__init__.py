"""Where containers run: the Docker engine layer (the only importer of the Docker SDK) and the
mapping from a service to a container's options."""
