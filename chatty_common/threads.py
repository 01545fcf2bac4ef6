"""One thread for numpy's matrix library (OpenBLAS) in every Chatty program.

numpy's OpenBLAS runs a matrix product on a thread per core, and its threads then wait for the next one
by spinning, for about a tenth of a second. Chatty's only products are small (the log-mel filterbank of
each Whisper and Smart Turn input), and right after each comes a model that wants every core
(CTranslate2, ONNX Runtime): on a two-core device the spinning thread took one from it. Measured on
two cores: a tiny.en decode in the fitted window 133 against 88 ms (median), Smart Turn 96 against 48 ms
of CPU (``bench/RESULTS.md``, "numpy's matrix library kept to one thread").
"""

from __future__ import annotations

import logging
import os

_LOGGER = logging.getLogger(__name__)

_USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")  # a user's own choice is left alone


def limit_blas_threads() -> None:
    """Keep numpy's BLAS to one thread, unless the environment sets its threads."""
    if any(os.environ.get(name) for name in _USER_SETTINGS):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # stays in force: nothing restores it
    _LOGGER.debug("numpy's BLAS limited to one thread")
