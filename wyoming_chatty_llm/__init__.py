"""Chatty's Wyoming conversation agent: a "handle" program that streams an LLM's answer as it is written.

Backends: llama.cpp in-process (the offline default), Ollama, and OpenAI or any
OpenAI-compatible server. Configuration comes from one ``config.json``.
"""
