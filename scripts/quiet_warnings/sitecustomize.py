"""Hide third-party deprecation warnings in the processes ``make run`` starts.

``scripts/devstack.py`` puts this folder on ``PYTHONPATH``, so Python imports this module
at start-up in every process it launches. Sanic (imported by ``rasa run`` and the action
server) adds a ``once`` filter for ``DeprecationWarning`` at the front of the filter list,
which overrides ``PYTHONWARNINGS``; so the deprecation noise of TensorFlow, Keras,
pkg_resources, matplotlib/pyparsing and SQLAlchemy is dropped where warnings are shown
instead. Every other category (Rasa's own ``UserWarning`` and ``FutureWarning`` about the
domain, the data or the model) is shown as before, and so is a deprecation raised from the
project's own code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, TextIO

# The project's own code: deprecations raised there are ours to fix, so they stay.
OWN_CODE = tuple(
    str(Path(__file__).resolve().parents[2] / name) + "/"
    for name in ("bot", "actions", "knowledge", "simulator", "scripts")
)
NOISE = (DeprecationWarning, PendingDeprecationWarning)


def is_third_party_deprecation(category: type[Warning], filename: str) -> bool:
    """True for a deprecation warning raised outside the project's own code."""
    return issubclass(category, NOISE) and not filename.startswith(OWN_CODE)


_show = warnings.showwarning


def showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> Any:
    if is_third_party_deprecation(category, filename):
        return None
    return _show(message, category, filename, lineno, file, line)


warnings.showwarning = showwarning
