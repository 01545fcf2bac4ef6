"""Start Home Assistant like ``hass`` does, letting it run on an older Python 3.13 than it asks for.

Run with the Home Assistant virtualenv's Python and hass's own arguments, e.g.
``.venv-ha-2026.2.3/bin/python scripts/hass_launcher.py -c CONFIG --skip-pip --log-no-color``. Home Assistant
2026.2 requires Python >= 3.13.2 (``homeassistant.const.REQUIRED_PYTHON_VER``, checked by ``validate_python()``
in ``homeassistant/__main__.py``) and refuses to start on 3.13.0. This launcher patches only that: it sets
``REQUIRED_PYTHON_VER`` to the running Python's version before Home Assistant's ``main()`` runs. Nothing else is
changed; the process exits with ``main()``'s code, whatever it is (a restart's 100 included).
"""

import sys
from pathlib import Path

# Python put this script's folder first on the path: drop it, so that nothing in scripts/ can shadow a module.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import homeassistant.__main__ as hass_main
import homeassistant.const as hass_const


def relax_python_check() -> None:
    """Make the running Python the required one, for ``validate_python()`` (its module's copy and const's)."""
    running = tuple(sys.version_info[:3])
    hass_const.REQUIRED_PYTHON_VER = running
    hass_main.REQUIRED_PYTHON_VER = running


def main() -> int:
    """Relax the version check, then run Home Assistant's own ``main()`` and return its exit code."""
    relax_python_check()
    return hass_main.main()


if __name__ == "__main__":
    sys.exit(main())
