"""Sharing trained agents: ONNX export, Hugging Face Hub packaging, push and pull."""
