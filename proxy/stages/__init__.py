"""The pipeline's stages, one concern each; :mod:`tenantry.proxy.pipeline` declares their order."""
