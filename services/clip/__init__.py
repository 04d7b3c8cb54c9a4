"""CLIP-family services: ``clip`` (semantic text/image embeddings, zero-shot classification) and
``bioclip`` (species classification). See :mod:`services.clip.service`."""
