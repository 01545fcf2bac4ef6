"""Chatty's Wyoming text-to-speech server on Kokoro-82M (ONNX Runtime), streaming audio sentence by sentence."""
