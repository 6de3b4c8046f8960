"""One line describing the machine the numbers were measured on, and how busy it was."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """CPU model and count, memory, kernel and Python: ``<cpu> x2, 23 GiB RAM, Linux 6.1, Python 3.11.7``."""
    return (
        f"{_cpu_model()} x{os.cpu_count()}, {_memory_gib()} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every absolute number."""
    return [round(value, 2) for value in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> int:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0
    return round(pages * page_size / 2**30)
