"""Inference services and runtimes (CLIP, BioCLIP, face, OCR on onnxruntime / torch / RKNN).

Transport-free: a service receives bytes + meta and returns a result. Nothing here imports
``app``, gRPC, Qt, zeroconf or the model-hub client libraries; a test enforces it.
"""
