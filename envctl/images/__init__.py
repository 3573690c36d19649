"""Images: bases bootstrapped, pulled or built; service images on them by content hash; build
contexts, build secrets, target platforms, registries and the shared cache."""
