"""The local ONNX engine: any decoder in the optimum layout, KV cache, CUDA or CPU."""
