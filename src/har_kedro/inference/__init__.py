"""Inference on new images with a trained model, and its ONNX export for serving."""
