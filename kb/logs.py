"""How kb logs: its own messages at the configured level; other libraries' warnings (a torch
TracerWarning during the one-off ONNX export, transformers' deprecation notes) only when asked
for with --verbose or KB_LOG_LEVEL=debug."""

from __future__ import annotations

import logging
import os
import time
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose warnings are about their own internals, not about kb's operation.
NOISY = ("transformers", "sentence_transformers", "torch", "onnxruntime", "optimum", "huggingface_hub",
         "httpx", "filelock", "urllib3", "multipart", "faiss")


def configure(level: str = "info", verbose: bool = False) -> None:
    """Log kb at `level`; show third-party warnings only when verbose (or at debug level)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    loud = verbose or numeric <= logging.DEBUG
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if loud else logging.ERROR)
    if not loud:
        quiet_warnings()
        # transformers resets its own logger's level when it is first imported; this is its switch
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def quiet_warnings() -> None:
    """Drop Python warnings raised inside third-party packages (kb's own still show)."""
    for module in NOISY:
        warnings.filterwarnings("ignore", module=module + r"(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*torch_dtype.*deprecated")
    warnings.filterwarnings("ignore", message=r"torch\.tensor results are registered as constants")


class ProgressLog:
    """Progress of a long job as log lines: at most one every `every` seconds, and one at the end."""

    def __init__(self, log: logging.Logger, what: str, every: float = 5.0) -> None:
        self.log, self.what, self.every = log, what, every
        self.total = self.done = 0
        self._last = 0.0

    def start(self, total: int) -> None:
        """Called once with the amount of work."""
        self.total, self._last = total, time.monotonic()
        if total:
            self.log.info("%s: 0 of %s", self.what, f"{total:,}")

    def advance(self, n: int) -> None:
        """Called as work is done."""
        self.done += n
        now = time.monotonic()
        if self.total and (now - self._last >= self.every or self.done >= self.total):
            self._last = now
            self.log.info("%s: %s of %s (%d%%)", self.what, f"{self.done:,}", f"{self.total:,}",
                          100 * self.done // self.total)
