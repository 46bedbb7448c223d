"""The model build toolchain: fetch, convert to ONNX, optimize, validate, select and publish."""
