"""The serving runtime: the Open Inference Protocol over REST and gRPC on ONNX Runtime."""
