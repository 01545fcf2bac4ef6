"""config.json: the shipped example, comments, and errors that name the file and the field; conversation memory."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import ROOT

from wyoming_chatty_llm.config import (
    Config,
    ConfigError,
    LlamaCppOptions,
    MemoryConfig,
    OllamaOptions,
    OpenAIOptions,
    api_key,
    load_config,
    parse_config,
    strip_comments,
)
from wyoming_chatty_llm.memory import ConversationMemory, Message

EXAMPLE = ROOT / "config.example.json"


def test_the_example_config_loads_and_says_what_the_defaults_are():
    config = load_config(EXAMPLE)
    defaults = Config()
    assert replace(config, source=defaults.source) == defaults
    assert "//" in EXAMPLE.read_text()  # it is the commented one


def test_comments_are_removed_but_urls_and_escapes_in_strings_stay():
    text = '{"a": "http://x//y", /* block\n comment */ "b": "say \\"//hi\\"" // end\n}'
    assert json.loads(strip_comments(text)) == {"a": "http://x//y", "b": 'say "//hi"'}


def test_an_ollama_config_is_read(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        '{"backend": "ollama", "languages": ["en", "de"], "memory": {"turns": 2},'
        ' "opts": {"ollama": {"host": "http://10.0.0.5:11434/", "model": "qwen2.5:3b", "keep_alive": -1,'
        ' "options": {"num_ctx": 4096}}}}'
    )
    config = load_config(path)
    assert config.backend == "ollama" and config.languages == ("en", "de") and config.memory.turns == 2
    assert config.options.host == "http://10.0.0.5:11434" and config.options.keep_alive == -1
    assert config.options.options == {"num_ctx": 4096} and config.model_name == "qwen2.5:3b"
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backend": "gpt"}, 'config.json: backend: must be one of "llama_cpp", "ollama", "openai", got "gpt"'),
        ({"sytem_prompt": "hi"}, 'config.json: sytem_prompt: unknown field (did you mean "system_prompt"?)'),
        ({"languages": []}, "config.json: languages: must be a non-empty list of language codes"),
        ({"memory": {"expiry_minutes": 2}}, "config.json: memory.expiry_minutes: must be a number from 5 to"),
        ({"memory": {"turns": 1.5}}, "config.json: memory.turns: must be a whole number from 0 to 100, got 1.5"),
        (
            {"opts": {"openai": {"temperature": "hot"}}},
            'config.json: opts.openai.temperature: must be a number from 0 to 2, got "hot"',
        ),
        ({"opts": {"olama": {}}}, 'config.json: opts.olama: unknown backend (did you mean "ollama"?)'),
        ({"opts": {"ollama": {"host": "localhost:11434"}}}, "config.json: opts.ollama.host: must be an http://"),
        ({"opts": {"openai": {"moderation": "yes"}}}, "config.json: opts.openai.moderation: must be true or false"),
        (
            {"opts": {"llama_cpp": {"hf_repo": "org/model-GGUF"}}},
            "config.json: opts.llama_cpp: hf_repo and hf_file go together",
        ),
        (
            {"opts": {"llama_cpp": {"timeout": 60, "total_timeout": 10}}},
            "config.json: opts.llama_cpp.total_timeout (10) must not be shorter than timeout (60)",
        ),
        ([], "config.json: the file must be a JSON object"),
    ],
)
def test_wrong_fields_are_named(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(message), str(caught.value)


def test_file_errors_name_the_file_and_the_place(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.json: no such file"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "backend": "ollama",\n  "languages": ["en",]\n}')
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON: .*line 3"):
        load_config(broken)


def test_api_keys_come_from_the_named_variable_and_are_never_in_messages():
    cloud = Config(backend="openai", options=OpenAIOptions(api_key_env="MY_KEY"), source="c.json")
    assert api_key(cloud, {"MY_KEY": "sk-secret"}) == "sk-secret"
    with pytest.raises(ConfigError) as caught:
        api_key(cloud, {})
    assert "MY_KEY" in str(caught.value) and "not set" in str(caught.value)
    with pytest.raises(ConfigError, match="OpenAI needs an API key"):
        api_key(replace(cloud, options=OpenAIOptions(api_key_env=None)), {})
    local = replace(cloud, options=OpenAIOptions(base_url="http://127.0.0.1:8000/v1", api_key_env=None))
    assert api_key(local, {}) is None
    assert api_key(Config(options=LlamaCppOptions()), {}) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_keeps_the_last_turns_dropping_the_older_half_at_once():
    memory = ConversationMemory(MemoryConfig(turns=4), _Clock())
    for n in range(4):
        memory.remember("kitchen", f"q{n}", f"a{n}")
    assert [m.content for m in memory.history("kitchen")[::2]] == ["q0", "q1", "q2", "q3"]
    assert memory.history("kitchen")[:2] == [Message("user", "q0"), Message("assistant", "a0")]
    memory.remember("kitchen", "q4", "a4")  # a fifth: the older half goes, the rest stays a stable prefix
    assert [m.content for m in memory.history("kitchen")[::2]] == ["q3", "q4"]
    memory.remember("kitchen", "q5", "a5")
    assert [m.content for m in memory.history("kitchen")[::2]] == ["q3", "q4", "q5"]
    assert memory.history("bedroom") == []


def test_memory_forgets_after_the_expiry():
    clock = _Clock()
    memory = ConversationMemory(MemoryConfig(turns=6, expiry_minutes=5), clock)
    memory.remember("kitchen", "q1", "a1")
    clock.now += 4 * 60  # a follow-up within five minutes keeps the conversation alive
    memory.remember("kitchen", "q2", "a2")
    clock.now += 4 * 60
    assert [m.content for m in memory.history("kitchen")] == ["q1", "a1", "q2", "a2"]
    clock.now += 60.1
    assert memory.history("kitchen") == [] and len(memory) == 0


def test_memory_is_bounded_in_conversations_and_message_size():
    memory = ConversationMemory(MemoryConfig(max_conversations=3), _Clock())
    for n in range(5):
        memory.remember(f"satellite-{n}", "question", "answer")
    assert len(memory) == 3 and memory.history("satellite-0") == [] and memory.history("satellite-4")
    memory.remember("satellite-2", "x" * 100_000, "y")
    assert len(memory.history("satellite-2")[-2].content) == 4000
    memory.remember("satellite-5", "q", "a")  # satellite-3 is now the least recently used
    assert memory.history("satellite-3") == [] and memory.history("satellite-2")
    assert not ConversationMemory(MemoryConfig(turns=0), _Clock()).history("any")


def test_api_keys_can_come_from_a_file_named_in_the_config(tmp_path):
    secret = tmp_path / "openai.key"
    secret.write_text("sk-from-a-file-31415\n")
    cloud = Config(backend="openai", options=OpenAIOptions(api_key_file=str(secret)), source="c.json")
    assert api_key(cloud, {"OPENAI_API_KEY": "sk-from-the-environment"}) == "sk-from-a-file-31415"
    with pytest.raises(ConfigError) as missing:
        api_key(replace(cloud, options=OpenAIOptions(api_key_file=str(tmp_path / "nope.key"))), {})
    assert "opts.openai.api_key_file" in str(missing.value) and "nope.key" in str(missing.value)
    secret.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        api_key(cloud, {})
    proxied = Config(backend="ollama", options=OllamaOptions(api_key_file=str(secret)), source="c.json")
    secret.write_text("ollama-token")
    assert api_key(proxied, {}) == "ollama-token"
