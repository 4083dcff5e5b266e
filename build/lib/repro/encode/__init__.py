"""Encoding texts into SPLADE vectors: model loading, the encoders (PyTorch, ONNX), corpus and query encoding, token quality."""
