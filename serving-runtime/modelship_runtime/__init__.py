"""modelship-runtime: serves ONNX models over the Open Inference Protocol and builds them."""

__version__ = "0.1.0"
