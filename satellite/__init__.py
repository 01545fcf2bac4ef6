"""Chatty's satellite: the room device. Wake word, microphone, streaming playback, barge-in and a
per-turn latency log, either as Home Assistant's Wyoming satellite or running turns directly against
Chatty's STT, LLM and TTS servers."""
