"""What the benchmark scripts say about the machine a figure was measured on."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """``"N cores, <CPU model>, no GPU"`` (every benchmark here runs on the CPU)."""
    return f"{os.cpu_count()} cores, {cpu_model()}, no GPU"


def versions_line(*packages: str) -> str:
    """``"python X, pkg Y, ..."``: the installed versions of ``packages``."""
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)
