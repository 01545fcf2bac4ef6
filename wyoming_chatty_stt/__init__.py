"""Chatty's Wyoming speech-to-text server on faster-whisper.

It decodes speculatively while audio streams in, so the final transcript is
usually ready by the time the client says ``audio-stop``.
"""
