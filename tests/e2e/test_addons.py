"""The Home Assistant add-ons in ``addons/``: their files against Supervisor's documented format, and their scripts run.

No Docker engine runs on the development machines or in CI, so the images are never built here. What is
tested instead: every ``config.yaml``, ``build.yaml``, ``repository.yaml`` and translation file against the
add-on format that Home Assistant documents and Supervisor enforces (written out below as data, with the
sources), options against their schemas, versions and ports against the project, the s6-overlay service
layout, ``shellcheck`` on every script, and the scripts themselves: each s6 ``run`` and ``discovery``
script runs under bash with a stand-in for bashio and for ``python3``, the server's command line it would
start is parsed by the server's real argument parser, and the conversation agent's generated
``config.json`` is read by the server's real config loader, for each backend.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from chatty_common.cli import check_uri
from wyoming_chatty_llm.config import Config, api_key, load_config

ROOT = Path(__file__).resolve().parents[2]
ADDONS_DIR = ROOT / "addons"

# slug -> (the Wyoming service's port, the Python package of its server, the s6 service name)
ADDONS: dict[str, tuple[int, str, str]] = {
    "chatty_stt": (10300, "wyoming_chatty_stt", "chatty-stt"),
    "chatty_tts": (10200, "wyoming_chatty_tts", "chatty-tts"),
    "chatty_llm": (10500, "wyoming_chatty_llm", "chatty-llm"),
}

# ---------------------------------------------------------------------------------------------------------
# The add-on format, as data. Sources (read for these facts; keys and values below are only those confirmed):
#   [docs]     https://developers.home-assistant.io/docs/add-ons/configuration
#              (required and optional config.yaml keys, the options/schema type list, build.yaml, translations)
#   [validate] https://github.com/home-assistant/supervisor/blob/main/supervisor/addons/validate.py
#              (_SCHEMA_ADDON_CONFIG, SCHEMA_BUILD_CONFIG, SCHEMA_ADDON_TRANSLATIONS, RE_VOLUME, image pattern)
#   [options]  https://github.com/home-assistant/supervisor/blob/main/supervisor/addons/options.py
#              (RE_SCHEMA_ELEMENT: the option type grammar; how defaults are checked; "?" = optional)
#   [const]    https://github.com/home-assistant/supervisor/blob/main/supervisor/const.py
#              (ARCH_ALL, AddonStartup, AddonBootConfig, AddonStage)
#   [aconst]   https://github.com/home-assistant/supervisor/blob/main/supervisor/addons/const.py
#              (RE_SLUG, MappingType)
#   [svalid]   https://github.com/home-assistant/supervisor/blob/main/supervisor/validate.py
#              (docker_ports: "PORT", "PORT/tcp" or "PORT/udp" -> host port 1-65535 or null)
#   [store]    https://github.com/home-assistant/supervisor/blob/main/supervisor/store/validate.py
#              (SCHEMA_REPOSITORY_CONFIG), and
#              https://github.com/home-assistant/supervisor/blob/main/supervisor/store/repository.py
#              (repository.yaml, .yml or .json is read from the root of the git repository)
# Supervisor drops keys it does not know (voluptuous REMOVE_EXTRA); here an unknown key is an error, since it
# is most likely a typo that would be silently ignored.
# ---------------------------------------------------------------------------------------------------------

ARCHES = {"armhf", "armv7", "aarch64", "amd64", "i386"}  # [const] ARCH_ALL, [docs]
STARTUPS = {"initialize", "system", "services", "application", "once"}  # [const] AddonStartup, [docs]
BOOTS = {"auto", "manual", "manual_only"}  # [const] AddonBootConfig, [docs] (manual_only: never at boot)
STAGES = {"stable", "experimental", "deprecated"}  # [const] AddonStage, [docs]
BACKUP_MODES = {"hot", "cold"}  # [docs]
MAPPING_TYPES = {  # [aconst] MappingType; [validate] RE_VOLUME for the "type:rw" string form
    "data",
    "config",
    "ssl",
    "addons",
    "backup",
    "share",
    "media",
    "homeassistant_config",
    "all_addon_configs",
    "addon_config",
}
SUPERVISOR_SLUG = re.compile(r"[-_.A-Za-z0-9]+")  # [aconst] RE_SLUG, matched whole ([validate] RE_SLUG_FIELD)
PROJECT_SLUG = re.compile(r"[a-z0-9_]+")  # this project's own, stricter convention: "URI friendly" ([docs])
DOCKER_PORT = re.compile(r"\d+(?:/tcp|/udp)?")  # [svalid] docker_port
# [validate] RE_DOCKER_IMAGE_BUILD: optional registry/namespace parts, then name/name, then an optional :tag.
BUILD_IMAGE = re.compile(r"(?:[A-Za-z0-9.:{}-]+/)*?[\w{}-]+/[\w{}-]+(?::[\w.{}-]+)?")
RE_VOLUME_TYPES = "|".join(sorted(MAPPING_TYPES))
MAP_STRING = re.compile(rf"(?:{RE_VOLUME_TYPES})(?::(?:rw|ro))?")  # [validate] RE_VOLUME


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_url(value: Any) -> bool:
    """voluptuous Url(): a string with a scheme and a network location."""
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return bool(parsed.scheme and parsed.netloc)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_port(value: Any) -> bool:
    """[svalid] network_port: 1 to 65535."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _check_ports(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["ports: must be a mapping"]
    errors = []
    for key, host_port in value.items():
        if not (isinstance(key, str) and DOCKER_PORT.fullmatch(key)):
            errors.append(f"ports: key {key!r} is not PORT, PORT/tcp or PORT/udp")
        if host_port is not None and not _is_port(host_port):
            errors.append(f"ports: {key}: host port {host_port!r} is neither null nor 1-65535")
    return errors


def _check_ports_description(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["ports_description: must be a mapping"]
    return [
        f"ports_description: {key!r} -> {text!r} is not PORT/proto -> text"
        for key, text in value.items()
        if not (isinstance(key, str) and DOCKER_PORT.fullmatch(key) and isinstance(text, str))
    ]


def _check_map(value: Any) -> list[str]:
    if not isinstance(value, list):
        return ["map: must be a list"]
    errors = []
    for entry in value:
        if isinstance(entry, str):
            if not MAP_STRING.fullmatch(entry):
                errors.append(f"map: {entry!r} is not TYPE or TYPE:rw/ro")
        elif isinstance(entry, dict):
            if entry.get("type") not in MAPPING_TYPES:
                errors.append(f"map: type {entry.get('type')!r} is not one of {sorted(MAPPING_TYPES)}")
            if "read_only" in entry and not isinstance(entry["read_only"], bool):
                errors.append("map: read_only must be true or false")
            if "path" in entry and not isinstance(entry["path"], str):
                errors.append("map: path must be a string")
            if extra := set(entry) - {"type", "read_only", "path"}:
                errors.append(f"map: unknown keys {sorted(extra)}")
        else:
            errors.append(f"map: entry {entry!r} is neither a string nor a mapping")
    return errors


def _one_of(allowed: set[str]):
    return lambda value: value in allowed


# config.yaml: key -> check. [docs] "Required configuration options": name, version, slug, description, arch.
# (*) stricter than Supervisor, which also takes an empty list.
CONFIG_REQUIRED = {"name", "version", "slug", "description", "arch"}
CONFIG_CHECKS: dict[str, Any] = {
    "name": _is_str,
    "version": _is_str,  # [docs] string; [validate] version_tag
    "slug": lambda value: isinstance(value, str) and bool(SUPERVISOR_SLUG.fullmatch(value)),
    "description": _is_str,
    "arch": lambda value: isinstance(value, list) and bool(value) and all(item in ARCHES for item in value),  # (*)
    "machine": _is_str_list,
    "url": _is_url,
    "startup": _one_of(STARTUPS),
    "boot": _one_of(BOOTS),
    "init": _is_bool,
    "advanced": _is_bool,
    "stage": _one_of(STAGES),
    "ports": _check_ports,
    "ports_description": _check_ports_description,
    "watchdog": _is_str,
    "webui": _is_str,
    "ingress": _is_bool,
    "ingress_port": lambda value: _is_port(value) or value == 0,
    "ingress_entry": _is_str,
    "ingress_stream": _is_bool,
    "panel_icon": _is_str,
    "panel_title": _is_str,
    "panel_admin": _is_bool,
    "homeassistant": _is_str,
    "host_network": _is_bool,
    "host_pid": _is_bool,
    "host_ipc": _is_bool,
    "host_uts": _is_bool,
    "host_dbus": _is_bool,
    "devices": _is_str_list,
    "udev": _is_bool,
    "tmpfs": _is_bool,
    "map": _check_map,
    "environment": lambda value: isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
    "privileged": _is_str_list,
    "apparmor": lambda value: isinstance(value, bool | str),
    "full_access": _is_bool,
    "audio": _is_bool,
    "video": _is_bool,
    "gpio": _is_bool,
    "usb": _is_bool,
    "uart": _is_bool,
    "devicetree": _is_bool,
    "kernel_modules": _is_bool,
    "realtime": _is_bool,
    "hassio_api": _is_bool,
    "hassio_role": _one_of({"default", "homeassistant", "backup", "manager", "admin"}),
    "homeassistant_api": _is_bool,
    "stdin": _is_bool,
    "legacy": _is_bool,
    "docker_api": _is_bool,
    "auth_api": _is_bool,
    "services": _is_str_list,
    "discovery": _is_str_list,
    "backup_exclude": _is_str_list,
    "backup_pre": _is_str,
    "backup_post": _is_str,
    "backup": _one_of(BACKUP_MODES),
    "options": lambda value: isinstance(value, dict),
    "schema": lambda value: value is False or isinstance(value, dict),
    "image": _is_str,
    "ulimits": lambda value: isinstance(value, dict),
    "timeout": lambda value: isinstance(value, int) and not isinstance(value, bool) and 10 <= value <= 300,
    "journald": _is_bool,
    "breaking_versions": _is_str_list,
}

BUILD_CHECKS: dict[str, Any] = {  # [validate] SCHEMA_BUILD_CONFIG, [docs] "Add-on extended build"
    "build_from": lambda value: (
        (isinstance(value, str) and bool(BUILD_IMAGE.fullmatch(value)))
        or (
            isinstance(value, dict)
            and all(
                arch in ARCHES and isinstance(image, str) and BUILD_IMAGE.fullmatch(image)
                for arch, image in value.items()
            )
        )
    ),
    "squash": _is_bool,
    "args": lambda value: (
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ),
    "labels": lambda value: (
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ),
}

REPOSITORY_REQUIRED = {"name"}  # [store] SCHEMA_REPOSITORY_CONFIG
REPOSITORY_CHECKS: dict[str, Any] = {"name": _is_str, "url": _is_url, "maintainer": _is_str}

# The option type grammar, [options] RE_SCHEMA_ELEMENT and [docs] "We support": str, password and int take an
# optional "(min,max)" of whole numbers, float one of decimals (either bound may be left out, the comma stays);
# device an optional "(subsystem=NAME)"; match(REGEX); list(a|b|c); a trailing "?" makes the option optional.
OPTION_TYPE = re.compile(
    r"""
    (?:
        (?P<plain>bool|email|url|port)
      | (?P<device>device)(?:\(subsystem=[a-z]+\))?
      | (?P<whole>str|password|int)(?:\((?P<whole_min>\d+)?,(?P<whole_max>\d+)?\))?
      | (?P<float>float)(?:\((?P<float_min>[\d.]+)?,(?P<float_max>[\d.]+)?\))?
      | match\((?P<regex>.*)\)
      | list\((?P<choices>.+)\)
    )
    (?P<optional>\?)?
    """,
    re.VERBOSE,
)


def parse_option_type(spec: Any) -> re.Match[str] | None:
    return OPTION_TYPE.fullmatch(spec) if isinstance(spec, str) else None


def _within(value: float, low: str | None, high: str | None) -> bool:
    return (low is None or value >= float(low)) and (high is None or value <= float(high))


def value_fits(spec: str, value: Any) -> bool:
    """Whether ``value`` passes the option type ``spec`` as Supervisor checks it ([options] _single_validate)."""
    match = parse_option_type(spec)
    assert match is not None, f"not an option type: {spec!r}"
    kind = match["plain"] or match["device"] or match["whole"] or match["float"]
    if kind in ("str", "password"):
        # The docs do not say what str(min,max) bounds; read here as the length. No option here uses it.
        return isinstance(value, str) and _within(len(value), match["whole_min"], match["whole_max"])
    if kind == "int":
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return is_int and _within(value, match["whole_min"], match["whole_max"])
    if kind == "float":
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return is_number and _within(value, match["float_min"], match["float_max"])
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "email":  # voluptuous Email(), roughly
        return isinstance(value, str) and bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value))
    if kind == "url":
        return _is_url(value)
    if kind == "port":
        return _is_port(value)
    if kind == "device":
        return isinstance(value, str)  # the device must exist on the host: not checkable here
    if match["regex"] is not None:
        return re.match(match["regex"], str(value)) is not None  # voluptuous Match: re.match
    return str(value) in match["choices"].split("|")


def schema_errors(schema: Any, where: str = "schema") -> list[str]:
    """Check a schema element: a type string, a list of one element, or a mapping of elements."""
    if isinstance(schema, str):
        return [] if parse_option_type(schema) else [f"{where}: {schema!r} is not an option type"]
    if isinstance(schema, list):
        if len(schema) != 1:
            return [f"{where}: a list schema holds exactly one element"]
        if isinstance(schema[0], list):
            return [f"{where}: a list may not directly hold another list"]
        return schema_errors(schema[0], f"{where}[]")
    if isinstance(schema, dict):
        return [error for key, value in schema.items() for error in schema_errors(value, f"{where}.{key}")]
    return [f"{where}: {schema!r} is neither a type, a list nor a mapping"]


def is_optional(schema: Any) -> bool:
    """[options] _check_missing_options: a type ending in "?" (for a list, its element's) may be left out."""
    if isinstance(schema, list) and schema:
        schema = schema[0]
    return isinstance(schema, str) and schema.endswith("?")


def option_errors(options: dict[str, Any], schema: dict[str, Any], where: str = "options") -> list[str]:
    """Every option has a schema entry and fits it; every required schema entry has an option."""
    errors = []
    for key, value in options.items():
        path = f"{where}.{key}"
        if key not in schema:
            errors.append(f"{path}: not in the schema (Supervisor would drop it)")
            continue
        spec = schema[key]
        if isinstance(spec, list):
            if not isinstance(value, list):
                errors.append(f"{path}: must be a list")
                continue
            for item in value:
                if isinstance(spec[0], dict):
                    errors += option_errors(item, spec[0], f"{path}[]") if isinstance(item, dict) else [path]
                elif not value_fits(spec[0], item):
                    errors.append(f"{path}: item {item!r} does not fit {spec[0]!r}")
        elif isinstance(spec, dict):
            errors += option_errors(value, spec, path) if isinstance(value, dict) else [f"{path}: must be a mapping"]
        elif not value_fits(spec, value):
            errors.append(f"{path}: default {value!r} does not fit {spec!r}")
    errors += [
        f"{where}.{key}: required by the schema ({spec!r}) but has no option"
        for key, spec in schema.items()
        if key not in options and not is_optional(spec)
    ]
    return errors


def mapping_errors(data: Any, checks: dict[str, Any], required: set[str], what: str) -> list[str]:
    if not isinstance(data, dict):
        return [f"{what}: not a mapping"]
    errors = [f"{what}: missing required key {key!r}" for key in sorted(required - set(data))]
    for key, value in data.items():
        check = checks.get(key)
        if check is None:
            errors.append(f"{what}: unknown key {key!r}")
            continue
        result = check(value)
        if isinstance(result, list):
            errors += [f"{what}: {message}" for message in result]
        elif not result:
            errors.append(f"{what}: {key}: invalid value {value!r}")
    return errors


def addon_config_errors(config: Any) -> list[str]:
    errors = mapping_errors(config, CONFIG_CHECKS, CONFIG_REQUIRED, "config.yaml")
    if isinstance(config, dict) and isinstance(config.get("schema"), dict):
        errors += schema_errors(config["schema"])
    return errors


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def addon_dir(slug: str) -> Path:
    return ADDONS_DIR / slug


def config_of(slug: str) -> dict[str, Any]:
    return load_yaml(addon_dir(slug) / "config.yaml")


def s6_dir(slug: str) -> Path:
    return addon_dir(slug) / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"


def run_script(slug: str) -> Path:
    return s6_dir(slug) / ADDONS[slug][2] / "run"


def discovery_script(slug: str) -> Path:
    return s6_dir(slug) / "discovery" / "run"


def shell_scripts() -> list[Path]:
    """Every file under the add-ons' rootfs that starts with a #! line."""
    return sorted(
        path for path in ADDONS_DIR.glob("*/rootfs/**/*") if path.is_file() and path.read_bytes().startswith(b"#!")
    )


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert project["name"] == "chatty"
    return project["version"]


def dockerfile_instruction(dockerfile: str, name: str) -> str:
    """The whole instruction (continuation lines joined) that starts with ``name``."""
    match = re.search(rf"^{name}\b(?:[^\n]*\\\n)*[^\n]*", dockerfile, re.MULTILINE)
    assert match, f"no {name} instruction"
    return re.sub(r"\\\n\s*", " ", match.group(0))


def healthcheck_command(slug: str) -> list[str]:
    instruction = dockerfile_instruction((addon_dir(slug) / "Dockerfile").read_text(encoding="utf-8"), "HEALTHCHECK")
    assert " CMD " in instruction, instruction
    return shlex.split(instruction.split(" CMD ", 1)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A stand-in for Home Assistant's bashio (https://github.com/hassio-addons/bashio, lib/bashio and lib/config.sh):
# like the real /usr/bin/bashio it sets errexit, errtrace, nounset and pipefail and then sources the script
# with its arguments. bashio::config answers from $TEST_OPTIONS (the add-on's options.json) as bashio does:
# "null" for an unset option, a list one item per line. Discovery is recorded instead of sent.
BASHIO_STUB = r"""#!/usr/bin/env bash
set -o errexit -o errtrace -o nounset -o pipefail
bashio::config() {
    jq -r --arg key "${1}" \
        '.[$key] | if . == null then "null" elif type == "array" then .[] else . end' "${TEST_OPTIONS}"
}
bashio::config.has_value() {
    local value
    value="$(bashio::config "${1}")"
    [[ "${value}" != "null" && -n "${value}" ]]
}
bashio::config.true() { [[ "$(bashio::config "${1}")" == "true" ]]; }
bashio::log.info() { echo "INFO: $*"; }
bashio::log.warning() { echo "WARNING: $*"; }
bashio::log.error() { echo "ERROR: $*"; }
bashio::exit.nok() {
    if (($#)); then echo "FATAL: $*"; fi
    exit 1
}
bashio::var.json() {
    local args=()
    while (($# >= 2)); do args+=(--arg "${1}" "${2}"); shift 2; done
    jq -c -n "${args[@]}" '$ARGS.named'
}
bashio::discovery() {
    jq -c -n --arg service "${1}" --argjson config "${2}" '{service: $service, config: $config}' \
        >> "${TEST_RECORD_DIR}/discovery.jsonl"
}
source "$@"
"""

# A stand-in for the image's python3: records how it was called (and the one variable that may carry a key).
PYTHON_STUB = f"""#!{sys.executable}
import json, os, sys
with open(os.path.join(os.environ["TEST_RECORD_DIR"], "python3.jsonl"), "a") as record:
    record.write(json.dumps({{"argv": sys.argv[1:], "key": os.environ.get("CHATTY_LLM_API_KEY")}}) + "\\n")
"""


class Sandbox:
    """Runs add-on scripts under bash with the bashio and python3 stand-ins, on given options."""

    def __init__(self, tmp_path: Path, slug: str) -> None:
        self.slug = slug
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.records = tmp_path / "records"
        self.bin.mkdir()
        self.records.mkdir()
        for name, text in (("bashio", BASHIO_STUB), ("python3", PYTHON_STUB)):
            (self.bin / name).write_text(text, encoding="utf-8")
            (self.bin / name).chmod(0o755)

    def run(self, script: Path, options: dict[str, Any], *, replace: dict[str, str] | None = None):
        """Run ``script`` as ``with-contenv bashio`` would, after replacing paths that exist only in the image."""
        text = script.read_text(encoding="utf-8")
        for old, new in (replace or {}).items():
            assert old in text, f"{script} does not mention {old}"
            text = text.replace(old, new)
        copy = self.tmp / f"{script.parent.name}-{script.name}"
        copy.write_text(text, encoding="utf-8")
        options_file = self.tmp / "options.json"
        options_file.write_text(json.dumps(options), encoding="utf-8")
        local_bin = addon_dir(self.slug) / "rootfs" / "usr" / "local" / "bin"
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(self.bin), str(local_bin), os.environ.get("PATH", "/usr/bin:/bin")]),
            "TEST_OPTIONS": str(options_file),
            "TEST_RECORD_DIR": str(self.records),
        }
        env.pop("CHATTY_LLM_API_KEY", None)
        return subprocess.run(
            [str(self.bin / "bashio"), str(copy)],
            cwd=self.tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self, name: str) -> list[dict[str, Any]]:
        path = self.records / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def options_with(slug: str, **changes: Any) -> dict[str, Any]:
    """The options Supervisor writes to /data/options.json: the defaults, with the user's changes."""
    options = dict(config_of(slug)["options"])
    options.update(changes)
    return options


def needs_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install -y {' '.join(missing)}")


# ---------------------------------------------------------------------------------------------------------
# The checks themselves reject what Supervisor rejects
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ("str", True),
        ("str?", True),
        ("str(3,)", True),
        ("str(,20)", True),
        ("password?", True),
        ("int", True),
        ("int(1,10)", True),
        ("float(0.5,)", True),
        ("float(0.5,2.0)?", True),
        ("bool", True),
        ("email", True),
        ("url?", True),
        ("port", True),
        ("match(^\\w*$)", True),
        ("list(llama_cpp|ollama|openai)", True),
        ("device(subsystem=tty)", True),
        ("string", False),
        ("integer", False),
        ("int(1)", False),
        ("int(-1,5)", False),
        ("float(a,)", False),
        ("list()", False),
        ("bool??", False),
        ("", False),
    ],
)
def test_option_type_grammar(spec: str, valid: bool) -> None:
    assert (parse_option_type(spec) is not None) is valid


@pytest.mark.parametrize(
    ("spec", "value", "fits"),
    [
        ("int(1,10)", 5, True),
        ("int(1,10)", 11, False),
        ("int", True, False),
        ("int", "3", False),
        ("float(0.5,2.0)", 1.0, True),
        ("float(0.5,2.0)", 0.1, False),
        ("list(a|b)", "b", True),
        ("list(a|b)", "c", False),
        ("url", "http://192.168.1.20:11434", True),
        ("url", "not a url", False),
        ("port", 0, False),
        ("bool", "false", False),
        ("match(^[a-z]+$)", "abc", True),
        ("match(^[a-z]+$)", "ABC", False),
    ],
)
def test_option_values_are_checked(spec: str, value: Any, fits: bool) -> None:
    assert value_fits(spec, value) is fits


def test_config_checks_reject_bad_configs() -> None:
    good = {"name": "x", "version": "1.0.0", "slug": "x", "description": "d", "arch": ["amd64"]}
    assert addon_config_errors(good) == []
    bad_cases = [
        {k: v for k, v in good.items() if k != "arch"},
        {**good, "arch": ["x86_64"]},
        {**good, "slug": "has space"},
        {**good, "startup": "before"},
        {**good, "boot": "always"},
        {**good, "init": "no"},
        {**good, "ports": {"10300/sctp": None}},
        {**good, "ports": {"10300/tcp": 70000}},
        {**good, "discovery": "wyoming"},
        {**good, "map": ["homeassistant:rw", "everything"]},
        {**good, "schema": {"x": "integer"}},
        {**good, "url": "example.com"},
        {**good, "discovry": ["wyoming"]},
    ]
    for bad in bad_cases:
        assert addon_config_errors(bad), f"accepted {bad}"
    assert option_errors({"a": 1}, {"a": "int", "b": "str"})  # b is required
    assert option_errors({"a": 1, "c": True}, {"a": "int"})  # c has no schema entry
    assert option_errors({"a": ["x", 2]}, {"a": ["str"]})  # an item does not fit
    assert option_errors({"a": 1}, {"a": "int", "b": "str?", "c": ["str?"]}) == []


# ---------------------------------------------------------------------------------------------------------
# The repository and its add-ons
# ---------------------------------------------------------------------------------------------------------


def test_repository_yaml() -> None:
    data = load_yaml(ADDONS_DIR / "repository.yaml")
    assert mapping_errors(data, REPOSITORY_CHECKS, REPOSITORY_REQUIRED, "repository.yaml") == []
    assert {"name", "url", "maintainer"} <= set(data)


def test_the_repository_holds_the_three_addons() -> None:
    found = {path.parent.name for path in ADDONS_DIR.glob("*/config.yaml")}
    assert found == set(ADDONS)
    for slug in ADDONS:
        assert config_of(slug)["slug"] == slug
        assert PROJECT_SLUG.fullmatch(slug)


@pytest.mark.parametrize("slug", ADDONS)
def test_config_yaml_is_valid(slug: str) -> None:
    config = config_of(slug)
    assert addon_config_errors(config) == []
    port = ADDONS[slug][0]
    assert config["arch"] == ["amd64", "aarch64"]
    assert config["init"] is False  # s6-overlay v3 is the image's init ([docs] init)
    assert config["discovery"] == ["wyoming"]
    assert config["ports"] == {f"{port}/tcp": None}
    if slug != "chatty_llm":  # the LLM add-on downloads nothing: its model files are the user's, in /share
        assert config["backup_exclude"], "downloaded and rebuilt models stay out of backups"
    assert "image" not in config, "no published image: Supervisor builds the Dockerfile on the device"


@pytest.mark.parametrize("slug", ADDONS)
def test_build_yaml_is_valid(slug: str) -> None:
    build = load_yaml(addon_dir(slug) / "build.yaml")
    assert mapping_errors(build, BUILD_CHECKS, set(), "build.yaml") == []
    assert set(build["build_from"]) == set(config_of(slug)["arch"])
    for arch, image in build["build_from"].items():
        assert re.fullmatch(rf"ghcr\.io/home-assistant/{arch}-base-debian:(bookworm|trixie)", image), image


@pytest.mark.parametrize("slug", ADDONS)
def test_options_match_schema(slug: str) -> None:
    config = config_of(slug)
    assert option_errors(config["options"], config["schema"]) == []


@pytest.mark.parametrize("slug", ADDONS)
def test_translations_cover_every_option(slug: str) -> None:
    translations = load_yaml(addon_dir(slug) / "translations" / "en.yaml")
    assert set(translations) <= {"configuration", "network"}  # [docs] "Add-on translations"
    configuration = translations["configuration"]
    assert set(configuration) == set(config_of(slug)["schema"])
    for key, entry in configuration.items():
        assert isinstance(entry.get("name"), str) and entry["name"].strip(), key
        assert isinstance(entry.get("description"), str) and entry["description"].strip(), key
        assert set(entry) <= {"name", "description", "fields"}, key


def test_addon_options_are_the_ones_users_change() -> None:
    assert {"model", "language", "beam_size", "debug_logging"} <= set(config_of("chatty_stt")["schema"])
    assert {"voice", "speed"} <= set(config_of("chatty_tts")["schema"])
    llm = config_of("chatty_llm")["schema"]
    assert llm["backend"] == "list(llama_cpp|ollama|openai)"
    assert {"model", "url", "system_prompt"} <= set(llm)
    assert llm["api_key"].rstrip("?") == "password"


@pytest.mark.parametrize("slug", ADDONS)
def test_versions_match_pyproject(slug: str) -> None:
    version = project_version()
    assert config_of(slug)["version"] == version
    build = load_yaml(addon_dir(slug) / "build.yaml")
    assert build["args"]["CHATTY_VERSION"] == version
    dockerfile = (addon_dir(slug) / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^ARG CHATTY_VERSION={re.escape(version)}$", dockerfile, re.MULTILINE)
    # Installed from the release tag of Chatty's repository, with its pinned dependencies, and checked.
    assert '--branch "v${CHATTY_VERSION}" "${CHATTY_REPO}"' in dockerfile
    assert "-c /usr/src/chatty/constraints.txt" in dockerfile
    assert 'm.version("chatty")' in dockerfile and '"${CHATTY_VERSION}"' in dockerfile
    extra = slug.removeprefix("chatty_")
    assert re.search(rf'"/usr/src/chatty\[[a-z,-]*\b{extra}\b[a-z,-]*\]"', dockerfile)
    # The "chatty" on PyPI is another project, and its 0.1 satisfies ==0.1.0: never install it by name.
    assert not re.search(r"chatty(\[[^\]]*\])?\s*==", dockerfile)


@pytest.mark.parametrize("slug", ADDONS)
def test_dockerfile_uses_the_build_args(slug: str) -> None:
    dockerfile = (addon_dir(slug) / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[:2] == ["ARG BUILD_FROM", "FROM ${BUILD_FROM}"]
    for name in load_yaml(addon_dir(slug) / "build.yaml")["args"]:
        assert re.search(rf"^ARG {name}\b", dockerfile, re.MULTILINE), f"build.yaml passes {name}, never declared"
    assert "COPY rootfs /" in dockerfile


def run_instructions(slug: str) -> list[str]:
    dockerfile = (addon_dir(slug) / "Dockerfile").read_text(encoding="utf-8")
    found = re.findall(r"^RUN\b(?:[^\n]*\\\n)*[^\n]*", dockerfile, re.MULTILINE)
    return [re.sub(r"\\\n\s*", " ", text).removeprefix("RUN") for text in found]


@pytest.mark.parametrize("slug", ADDONS)
def test_dockerfile_run_steps(slug: str) -> None:
    """The RUN steps are valid shell, and their Python checks pass on this project (and fail on another version)."""
    steps = run_instructions(slug)
    assert steps
    checks = []
    for step in steps:
        result = subprocess.run(["bash", "-n", "-c", step], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        words = shlex.split(step)
        for i, word in enumerate(words[:-2]):
            if word == "/opt/chatty/bin/python3" and words[i + 1] == "-c":
                args = []
                for arg in words[i + 3 :]:
                    if arg == "&&":
                        break
                    args.append(arg)
                checks.append((words[i + 2], args))
    assert [code for code, _ in checks][1] == f"import {ADDONS[slug][1]}.health_check" + (
        ", llama_cpp" if slug == "chatty_llm" else ""
    )
    version_check, args = checks[0]
    assert args == ["${CHATTY_VERSION}"]
    for code, args in checks:
        argv = [arg.replace("${CHATTY_VERSION}", project_version()) for arg in args]
        result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-c", version_check, "9.9.9"], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "9.9.9 expected" in result.stderr


@pytest.mark.parametrize("slug", ADDONS)
def test_placeholder_repository_stops_the_build(slug: str) -> None:
    """Until CHATTY_REPO names Chatty's real repository, the first RUN step fails instead of installing anything."""
    guard = run_instructions(slug)[0].split("&&")[0]
    repo = load_yaml(addon_dir(slug) / "build.yaml")["args"]["CHATTY_REPO"]
    for value, fails in ((repo, "example.invalid" in repo), ("", True), ("https://git.example.org/chatty.git", False)):
        result = subprocess.run(
            ["bash", "-c", guard], env={"CHATTY_REPO": value}, capture_output=True, text=True, check=False
        )
        assert (result.returncode != 0) is fails, (value, result.stderr)


def test_scripts_are_executable() -> None:
    for script in shell_scripts():
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_build_args_agree_across_addons() -> None:
    args = [load_yaml(addon_dir(slug) / "build.yaml")["args"] for slug in ADDONS]
    assert all(item == args[0] for item in args)


@pytest.mark.parametrize("slug", ADDONS)
def test_healthcheck_runs_the_servers_health_check(slug: str) -> None:
    port, package, _ = ADDONS[slug]
    command = healthcheck_command(slug)
    assert command[:3] == ["python3", "-m", f"{package}.health_check"], command
    assert command[command.index("--uri") + 1] == f"tcp://127.0.0.1:{port}"
    # The module exists and takes these flags: against a closed port it reports "unhealthy" (argparse: exit 2).
    closed = free_port()
    args = [arg.replace(f":{port}", f":{closed}") for arg in command[1:]]
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "unhealthy" in result.stderr


@pytest.mark.parametrize("slug", ADDONS)
def test_ports_agree(slug: str) -> None:
    port = ADDONS[slug][0]
    assert config_of(slug)["ports"] == {f"{port}/tcp": None}
    run = run_script(slug).read_text(encoding="utf-8")
    assert re.findall(r"--uri '?tcp://0\.0\.0\.0:(\d+)", run) == [str(port)]
    discovery = discovery_script(slug).read_text(encoding="utf-8")
    assert set(re.findall(r"tcp://[^:\s'\"]+:(\d+)", discovery)) == {str(port)}
    assert f"tcp://$(hostname):{port}" in discovery
    assert f"tcp://127.0.0.1:{port}" in " ".join(healthcheck_command(slug))


@pytest.mark.parametrize("slug", ADDONS)
def test_s6_overlay_layout(slug: str) -> None:
    service = ADDONS[slug][2]
    base = s6_dir(slug)
    assert (base / service / "type").read_text() == "longrun\n"
    assert (base / service / "dependencies.d" / "base").is_file()
    assert (base / "discovery" / "type").read_text() == "oneshot\n"
    assert (base / "discovery" / "up").read_text() == "/etc/s6-overlay/s6-rc.d/discovery/run\n"
    assert (base / "discovery" / "dependencies.d" / service).is_file()
    assert {path.name for path in (base / "user" / "contents.d").iterdir()} == {service, "discovery"}
    for script in (base / service / "run", base / service / "finish", base / "discovery" / "run"):
        assert script.read_text(encoding="utf-8").startswith("#!/command/with-contenv bashio\n"), script
        assert os.access(script, os.X_OK), f"{script} is not executable"
    run = (base / service / "run").read_text(encoding="utf-8")
    assert re.search(rf"^exec python3 -m {ADDONS[slug][1]} ", run, re.MULTILINE)
    assert "--zeroconf" in run  # the data dir, under /data, is checked by running the script (below)
    finish = (base / service / "finish").read_text(encoding="utf-8")
    assert "/run/s6-linux-init-container-results/exitcode" in finish and "/run/s6/basedir/bin/halt" in finish


@pytest.mark.parametrize("slug", ADDONS)
def test_addon_documents(slug: str) -> None:
    for name in ("DOCS.md", "CHANGELOG.md", "README.md"):
        assert (addon_dir(slug) / name).read_text(encoding="utf-8").strip(), name
    assert f"## {project_version()}" in (addon_dir(slug) / "CHANGELOG.md").read_text(encoding="utf-8")
    docs = (addon_dir(slug) / "DOCS.md").read_text(encoding="utf-8")
    for option in config_of(slug)["schema"]:
        assert f"`{option}`" in docs, f"DOCS.md does not explain {option}"


def test_shellcheck() -> None:
    needs_tools("shellcheck")
    scripts = shell_scripts()
    assert len(scripts) == 3 * 3 + 1  # run, finish and discovery per add-on, and chatty-llm-config
    # The scripts run under bashio (bash with the bashio library): shellcheck reads them as bash.
    result = subprocess.run(
        ["shellcheck", "--shell=bash", *map(str, scripts)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# The scripts, run
# ---------------------------------------------------------------------------------------------------------


def started_server(sandbox: Sandbox, result: subprocess.CompletedProcess[str], slug: str):
    """The command line the run script exec'd, parsed by the server's own argument parser."""
    assert result.returncode == 0, result.stdout + result.stderr
    calls = sandbox.calls("python3")
    assert len(calls) == 1, calls
    argv = calls[0]["argv"]
    package = ADDONS[slug][1]
    assert argv[:2] == ["-m", package]
    parser = importlib.import_module(f"{package}.__main__").build_parser()
    args = parser.parse_args(argv[2:])
    check_uri(parser, args)
    assert args.uri == f"tcp://0.0.0.0:{ADDONS[slug][0]}"
    assert args.zeroconf == f"chatty-{slug.removeprefix('chatty_')}"
    return args, calls[0]


# Quotes, a newline, and shell syntax that would leave a file named "injected" if a script evaluated it.
PROMPT = 'You are "Nabu", Kai\'s assistant.\nNever $(touch injected) or `touch injected`; 100% \\n ${HOME}.'


def test_stt_run_script_starts_the_server_with_the_options(tmp_path: Path) -> None:
    needs_tools("jq")
    sandbox = Sandbox(tmp_path, "chatty_stt")
    result = sandbox.run(run_script("chatty_stt"), options_with("chatty_stt"))
    args, _ = started_server(sandbox, result, "chatty_stt")
    assert (args.model, args.language, args.beam_size) == ("tiny.en", "auto", 1)
    assert args.data_dir == Path("/data/stt") and args.initial_prompt is None and not args.debug

    (tmp_path / "changed").mkdir()
    sandbox = Sandbox(tmp_path / "changed", "chatty_stt")
    changed = options_with("chatty_stt", model="base", language="de", beam_size=5, initial_prompt=PROMPT, cpu_threads=3)
    result = sandbox.run(run_script("chatty_stt"), {**changed, "debug_logging": True})
    args, _ = started_server(sandbox, result, "chatty_stt")
    assert (args.model, args.language, args.beam_size, args.cpu_threads) == ("base", "de", 5, 3)
    assert args.initial_prompt == PROMPT and args.debug
    assert not list(tmp_path.rglob("injected")), "the shell ran part of an option"


@pytest.mark.parametrize("with_voices", [False, True])
def test_tts_run_script_starts_the_server_with_the_options(tmp_path: Path, with_voices: bool) -> None:
    needs_tools("jq")
    voices = tmp_path / "voices"
    if with_voices:
        voices.mkdir()
    sandbox = Sandbox(tmp_path, "chatty_tts")
    options = options_with("chatty_tts", voice="jf_alpha:0.7+jm_kumo:0.3", speed=1.25, debug_logging=True)
    result = sandbox.run(run_script("chatty_tts"), options, replace={"/share/chatty/voices": str(voices)})
    args, _ = started_server(sandbox, result, "chatty_tts")
    assert (args.voice, args.speed, args.language, args.debug) == ("jf_alpha:0.7+jm_kumo:0.3", 1.25, "en-us", True)
    assert args.data_dir == Path("/data/tts")
    assert args.voices_dir == (voices if with_voices else None)


@pytest.mark.parametrize("slug", ADDONS)
def test_discovery_announces_the_service(tmp_path: Path, slug: str) -> None:
    needs_tools("jq", "hostname")
    port, package, _ = ADDONS[slug]
    sandbox = Sandbox(tmp_path, slug)
    result = sandbox.run(discovery_script(slug), options_with(slug))
    assert result.returncode == 0, result.stdout + result.stderr
    # It waited with the server's own health check, then announced tcp://HOSTNAME:PORT as a wyoming service.
    assert sandbox.calls("python3")[0]["argv"] == ["-m", f"{package}.health_check", "--uri", f"tcp://127.0.0.1:{port}"]
    hostname = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    assert sandbox.calls("discovery") == [{"service": "wyoming", "config": {"uri": f"tcp://{hostname}:{port}"}}]


SECRET = "sk-test-Chatty-0123456789-do-not-leak"


def run_llm(tmp_path: Path, **changes: Any) -> tuple[Sandbox, subprocess.CompletedProcess[str], Path]:
    needs_tools("jq")
    data_dir = tmp_path / "data-llm"
    sandbox = Sandbox(tmp_path, "chatty_llm")
    result = sandbox.run(
        run_script("chatty_llm"), options_with("chatty_llm", **changes), replace={"/data/llm": str(data_dir)}
    )
    return sandbox, result, data_dir / "config.json"


def llm_config(tmp_path: Path, **changes: Any) -> tuple[Config, dict[str, Any], str]:
    """Run the add-on's start with these options; return the config the server loads, its start, and the logs."""
    sandbox, result, config_file = run_llm(tmp_path, **changes)
    args, call = started_server(sandbox, result, "chatty_llm")
    assert args.config == config_file and args.data_dir == config_file.parent
    config = load_config(args.config)
    # The key is handed over only in the environment: not in the file, the command line or the log.
    logs = result.stdout + result.stderr
    for where in (config_file.read_text(encoding="utf-8"), " ".join(call["argv"]), logs):
        assert SECRET not in where
    return config, call, logs


def test_llm_config_llama_cpp_defaults(tmp_path: Path) -> None:
    config, call, _ = llm_config(tmp_path)
    assert config.backend == "llama_cpp"
    assert config.options.model is None and config.model_name == "SmolLM2-135M-Instruct"
    assert config.languages == ("en",)
    assert config.system_prompt == Config().system_prompt
    assert call["key"] is None and api_key(config, {}) is None
    assert "--debug" not in call["argv"]


def test_llm_config_llama_cpp_with_options(tmp_path: Path) -> None:
    config, call, logs = llm_config(
        tmp_path,
        model="/share/models/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        system_prompt=PROMPT,
        languages=["en", "de"],
        url="http://192.168.1.20:11434",
        debug_logging=True,
    )
    assert config.options.model == "/share/models/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    assert config.system_prompt == PROMPT  # passed through verbatim, never evaluated by the shell
    assert not list(tmp_path.rglob("injected")), "the shell ran part of an option"
    assert config.languages == ("en", "de")
    assert "--debug" in call["argv"]
    assert "url is not used" in logs


def test_llm_config_ollama(tmp_path: Path) -> None:
    config, call, _ = llm_config(tmp_path, backend="ollama", url="http://192.168.1.20:11434", model="llama3.2:3b")
    assert config.backend == "ollama"
    assert (config.options.host, config.options.model) == ("http://192.168.1.20:11434", "llama3.2:3b")
    assert config.options.api_key_env is None and call["key"] is None


def test_llm_config_ollama_with_key(tmp_path: Path) -> None:
    config, call, _ = llm_config(tmp_path, backend="ollama", url="https://ollama.example.org", api_key=SECRET)
    assert config.options.model == "llama3.2"  # the server's default
    assert config.options.api_key_env == "CHATTY_LLM_API_KEY"
    assert call["key"] == SECRET and api_key(config, {"CHATTY_LLM_API_KEY": call["key"]}) == SECRET


def test_llm_config_openai(tmp_path: Path) -> None:
    config, call, _ = llm_config(tmp_path, backend="openai", api_key=SECRET)
    assert config.backend == "openai"
    assert config.options.base_url is None and config.options.model == "gpt-4o-mini"
    assert config.options.api_key_env == "CHATTY_LLM_API_KEY"
    # The server finds the key where the config says, in the environment the run script gave it.
    assert call["key"] == SECRET and api_key(config, {"CHATTY_LLM_API_KEY": call["key"]}) == SECRET


def test_llm_config_openai_compatible_server_without_key(tmp_path: Path) -> None:
    config, call, _ = llm_config(tmp_path, backend="openai", url="http://192.168.1.20:8000/v1/", model="qwen2.5")
    assert (config.options.base_url, config.options.model) == ("http://192.168.1.20:8000/v1", "qwen2.5")
    assert config.options.api_key_env is None and call["key"] is None and api_key(config, {}) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend": "ollama"}, "needs url"),
        ({"backend": "openai"}, "OpenAI needs api_key"),
    ],
)
def test_llm_config_incomplete_options_stop_the_start(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    sandbox, result, config_file = run_llm(tmp_path, **changes)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert sandbox.calls("python3") == [] and not config_file.exists()
