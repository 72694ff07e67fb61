"""Transformers' own progress bars (``from_pretrained``'s "Loading weights"), silenced on request.

attnaudit's ``--no-progress`` turns off its own tqdm bars; transformers draws others through its
own switch, which this module turns off around one call and then restores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Within the block, transformers' progress bars are off unless ``enabled``; afterwards they are
    as they were.

    With ``enabled`` nothing is touched, and transformers is not imported here: the paper's models
    never import it, and a caller that shows progress keeps today's behaviour exactly.

    Example:
        >>> with transformers_progress(False):
        ...     pass  # from_pretrained(...) here draws no bar
    """
    if enabled:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        # Only the switch's previous state is restored: turning bars on that were already off (by
        # the user, or HF_HUB_DISABLE_PROGRESS_BARS) would undo their choice.
        if was_enabled:
            hf_logging.enable_progress_bar()
