"""LLM backends behind one interface (:class:`.base.ChatBackend`): llama.cpp in-process, Ollama, OpenAI."""
