"""Code shared by the Chatty Wyoming servers and the satellite.

Start-up and common CLI flags (:mod:`.cli`, :mod:`.server`), the bounded
Wyoming event reader (:mod:`.protocol`), audio conversion (:mod:`.audio`),
zeroconf advertise/browse (:mod:`.zeroconf`) and the health check
(:mod:`.health_check`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatty")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
