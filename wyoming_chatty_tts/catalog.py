"""The voices of Kokoro-82M v1.0 that the server can fetch from Hugging Face, and the language each speaks."""

from __future__ import annotations

REPO = "hexgrad/Kokoro-82M"
"""The model's own repository; each voice is ``voices/NAME.pt`` there (a 510x1x256 float32 tensor)."""

_VOICES = """
    af_alloy af_aoede af_bella af_heart af_jessica af_kore af_nicole af_nova af_river af_sarah af_sky
    am_adam am_echo am_eric am_fenrir am_liam am_michael am_onyx am_puck am_santa
    bf_alice bf_emma bf_isabella bf_lily bm_daniel bm_fable bm_george bm_lewis
    ef_dora em_alex em_santa ff_siwis hf_alpha hf_beta hm_omega hm_psi if_sara im_nicola
    jf_alpha jf_gongitsune jf_nezumi jf_tebukuro jm_kumo pf_dora pm_alex pm_santa
    zf_xiaobei zf_xiaoni zf_xiaoxiao zf_xiaoyi zm_yunjian zm_yunxi zm_yunxia zm_yunyang
"""
VOICES = tuple(_VOICES.split())

# The espeak-ng language each voice was trained on, by the first letter of its name. Kokoro reads
# Japanese and Mandarin from misaki's phonemes, not espeak-ng's, so those voices speak the server's
# --language (as the bundled Japanese voices always have: accented English).
_ESPEAK_LANGUAGES = {"a": "en-us", "b": "en-gb", "e": "es", "f": "fr-fr", "h": "hi", "i": "it", "p": "pt-br"}


def voice_file(name: str) -> str:
    """The path of a catalog voice inside :data:`REPO`."""
    return f"voices/{name}.pt"


def own_language(name: str) -> str | None:
    """The espeak-ng language a Kokoro voice speaks (``af_heart``: en-us); None: the server's --language."""
    return _ESPEAK_LANGUAGES.get(name[0]) if name in VOICES else None
