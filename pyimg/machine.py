"""What machine this is, for reports, run records and benchmark results."""

import platform


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
