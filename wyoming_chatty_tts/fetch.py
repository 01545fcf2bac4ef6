"""Fetch Kokoro files (voices, models) from Hugging Face into the data folder once, checked against the hub's hash.

``huggingface_hub`` does the download, so ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE`` and a token
work as users of Hugging Face know them; it checks the size, and resumes an interrupted download
from its ``.incomplete`` file. The file is kept under its hash (the hub's ETag: the SHA-256 of the
file for large files), which this module checks before the file is used; a file that does not match
is deleted, never used.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import numpy as np

from chatty_common.files import sha256_file
from chatty_common.progress import Heartbeat

from .catalog import REPO, VOICES, voice_file
from .voices import VoiceError, load_torch_tensor

_LOGGER = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
ASK_AGAIN_AFTER = 1.0  # s before a hub that answered with a server error is asked once more (a client waits)


class DownloadError(Exception):
    """A file could not be fetched; the message says why."""


class NotDownloaded(DownloadError):
    """A file that is not here, with no hub to fetch it from (offline, or unreachable)."""


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_blob(path: Path, what: str) -> None:
    """Raise DownloadError unless the downloaded file matches the hash it is stored under (and delete it)."""
    blob = path.resolve()
    expected = blob.name
    if _SHA256.match(expected):
        actual = sha256_file(blob)
    elif _GIT_SHA1.match(expected):
        actual = _git_blob_sha1(blob)
    else:
        raise DownloadError(f"{what}: the hub gave no hash to check {path.name} against (ETag {expected!r})")
    if actual != expected:
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise DownloadError(
            f"{what} does not match its hash ({path.name}: expected {expected}, got {actual}); deleted it"
        )


def _downloaded_mb(cache: Path) -> str:
    """How much of the files being downloaded into ``cache`` has arrived (for the progress lines)."""
    size = sum(part.stat().st_size for part in cache.glob("models--*/blobs/*.incomplete"))
    return f"{size / 1e6:.1f} MB so far"


def cached_file(repo: str, filename: str, cache: Path) -> Path | None:
    """The file, if it was fetched before (no network needed)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache)
    return Path(found) if isinstance(found, str) else None


def fetch_file(repo: str, filename: str, cache: Path, what: str, *, client_waits: bool = False) -> Path:
    """``filename`` of ``repo``: from ``cache``, or downloaded into it first and checked (blocking).

    ``what`` names the file in messages ("voice af_heart"). Raises NotDownloaded when it is not here and
    cannot be fetched, DownloadError when the download fails. ``client_waits``: a request waits for it
    (not the start-up), so a hub that answers with a server error twice is an error at once, not after
    ``huggingface_hub``'s 23 s of retries.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils import disable_progress_bars

    try:
        path = Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise NotDownloaded(
                f"{what} is not on this machine and needs a download from Hugging Face ({repo}), "
                "which this server does not do (HF_HUB_OFFLINE is set)"
            ) from None
        _check_reachable(repo, filename, what, client_waits)
        _LOGGER.info("Fetching %s from %s (%s; once, kept in %s)", what, constants.ENDPOINT, repo, cache)
        disable_progress_bars()  # progress goes to the log instead, a line every 10 s
        try:
            with Heartbeat(_LOGGER, f"Fetching {what}", status=lambda: _downloaded_mb(cache)):
                path = Path(hf_hub_download(repo, filename, cache_dir=cache))
        except LocalEntryNotFoundError as err:  # the hub unreachable, or its answer an error
            cause = err.__cause__ or err.__context__
            if isinstance(cause, HfHubHTTPError):
                raise DownloadError(f"could not download {what} from {repo}: {_one_line(cause)}") from err
            raise NotDownloaded(
                f"{what} needs a download from Hugging Face ({repo}) and the hub cannot be reached "
                f"({constants.ENDPOINT}): {_one_line(err)}"
            ) from err
        except Exception as err:  # an error status, a cut connection, a short file, a full disk
            raise DownloadError(f"could not download {what} from {repo}: {_one_line(err)}") from err
        check_blob(path, what)  # once, when it arrives: a file in the cache has passed it
        _LOGGER.info("Fetched %s (%.1f MB)", what, path.stat().st_size / 1e6)
    return path


def _check_reachable(repo: str, filename: str, what: str, client_waits: bool) -> None:
    """Raise NotDownloaded at once when the hub does not answer.

    ``hf_hub_download`` retries a network error, or a server error status (5xx), five times, waiting
    1 + 2 + 4 + 8 + 8 s: a client asking for a voice while the network is down would wait 23 s for its
    error. One request without retries first; an answer from the hub, even an error status, goes on to
    the download, which reports it (and retries what is worth retrying): except, when a client waits,
    a server error that the hub gives again a second later, which is a DownloadError at once.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    for asked in (1, 2):
        try:
            get_hf_file_metadata(hf_hub_url(repo, filename))
            return
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if not client_waits or status is None or status < 500:
                return
            if asked == 2:
                raise DownloadError(f"could not download {what} from {repo}: {_one_line(err)}") from err
            time.sleep(ASK_AGAIN_AFTER)
        except Exception as err:  # no answer: refused, unknown host, timed out
            raise NotDownloaded(
                f"{what} needs a download from Hugging Face ({repo}) and the hub cannot be reached "
                f"({constants.ENDPOINT}): {_one_line(err)}"
            ) from err


def _one_line(err: BaseException) -> str:
    """The error's message on one line (huggingface_hub's span several), at most 300 characters."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class VoiceNotDownloaded(VoiceError):
    """A Kokoro voice that is not on this machine and cannot be fetched now (offline, or the hub unreachable)."""


class VoiceDownloadFailed(VoiceError):
    """A Kokoro voice whose download failed; the message says why."""


class VoiceFetcher:
    """Kokoro-82M voices by name, from the data folder or, the first time, from Hugging Face (blocking calls)."""

    def __init__(self, data_dir: Path) -> None:
        self.cache = data_dir / "huggingface"

    def cached(self) -> list[str]:
        """The catalog voices already in the data folder."""
        return [name for name in VOICES if cached_file(REPO, voice_file(name), self.cache) is not None]

    def fetch(self, name: str, *, client_waits: bool = False) -> np.ndarray:
        """The voice's style tensor: from the data folder, or downloaded into it first (see :func:`fetch_file`)."""
        try:
            path = fetch_file(REPO, voice_file(name), self.cache, f"voice {name}", client_waits=client_waits)
            return load_torch_tensor(path)
        except NotDownloaded as err:
            raise VoiceNotDownloaded(str(err)) from err
        except DownloadError as err:
            raise VoiceDownloadFailed(str(err)) from err
