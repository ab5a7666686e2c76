"""What caffelite computes on: the CPU, numpy, and the BLAS library numpy was built against.

Caffe's `device_query` describes a GPU; caffelite has one backend (numpy on the CPU), so `caffelite device_query`
describes that instead: the facts that decide how fast a net runs, and what a bug report needs.
"""

import ctypes
import logging
import os
import platform
from dataclasses import dataclass, field

import numpy as np

# Environment variables that cap the threads of OpenBLAS / OpenMP builds / MKL / Apple Accelerate.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass
class DeviceInfo:
    cpu_model: str
    logical_cores: int
    usable_cores: int
    machine: str
    system: str
    python_version: str
    numpy_version: str
    blas: dict = field(default_factory=dict)  # name, version, configuration (whatever numpy reports)
    simd: dict = field(default_factory=dict)  # baseline / found / not found, as lists
    thread_variables: dict = field(default_factory=dict)  # only the ones that are set
    blas_threads: int = None  # what the loaded OpenBLAS says at run time, when it can be asked
    blas_thread_timeout: int = None  # log2 of the clock ticks its idle threads spin before they sleep (OpenBLAS)

    def lines(self):
        """Human-readable `name: value` lines, one fact each (the `caffelite device_query` output)."""
        blas = self.blas
        blas_name = " ".join(str(blas[key]) for key in ("name", "version") if blas.get(key)) or "unknown"
        rows = [
            "Device: CPU (numpy backend)",
            f"CPU model: {self.cpu_model}",
            f"Logical cores: {self.logical_cores} ({self.usable_cores} usable by this process)",
            f"Machine: {self.machine}, {self.system}",
            f"Python: {self.python_version}",
            f"numpy: {self.numpy_version}",
            f"BLAS: {blas_name}",
        ]
        if blas.get("configuration"):
            rows.append(f"BLAS configuration: {blas['configuration']}")
        if self.simd:
            rows.append("SIMD: " + "; ".join(f"{kind} {' '.join(names) or '-'}" for kind, names in self.simd.items()))
        if self.thread_variables:
            rows.append("Threads: " + ", ".join(f"{name}={value}" for name, value in self.thread_variables.items()))
        else:
            rows.append(f"Threads: none of {', '.join(THREAD_VARIABLES)} is set (the BLAS library chooses)")
        if self.blas_threads is not None:
            rows.append(f"BLAS threads in use: {self.blas_threads}")
        if self.blas_thread_timeout is not None:
            rows.append(f"BLAS idle threads spin for 2^{self.blas_thread_timeout} clock ticks before they sleep "
                        "(OPENBLAS_THREAD_TIMEOUT as OpenBLAS last read it)")
        return rows


def query():
    """Everything `DeviceInfo` holds, for this process on this machine."""
    build = _numpy_build_info()
    return DeviceInfo(
        cpu_model=cpu_model(),
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        machine=platform.machine() or "unknown",
        system=platform.platform(),
        python_version=platform.python_version(),
        numpy_version=np.__version__,
        blas=_blas_of(build),
        simd=_simd_of(build),
        thread_variables={name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
        blas_threads=openblas_threads(),
        blas_thread_timeout=openblas_thread_timeout(),
    )


def cpu_model(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's marketing name: from /proc/cpuinfo on Linux (x86 and ARM spellings), else from `platform`."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        text = ""
    found = parse_cpuinfo(text)
    return found or platform.processor() or platform.machine() or "unknown"


def parse_cpuinfo(text):
    """The first model-name field of a /proc/cpuinfo text, or '' (x86 says `model name`, others differ)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "hardware", "cpu model", "processor", "cpu"):
        value = fields.get(key, "")
        if value and not value.isdigit():  # x86's `processor` field is just the core's index
            return value
    return ""


def usable_cores():
    """The cores this process may run on (its CPU affinity), else all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _numpy_build_info():
    """numpy's build configuration as a dict (numpy >= 1.25 can return it); {} if this numpy cannot."""
    try:
        return np.show_config(mode="dicts") or {}
    except (TypeError, ValueError):
        return {}


def _blas_of(build):
    blas = build.get("Build Dependencies", {}).get("blas", {})
    info = {"name": blas.get("name", ""), "version": blas.get("version", "")}
    configuration = blas.get("openblas configuration", "")
    if configuration and configuration != "unknown":
        info["configuration"] = " ".join(configuration.split())
    return {key: value for key, value in info.items() if value}


def _simd_of(build):
    simd = build.get("SIMD Extensions", {})
    return {kind: list(simd[kind]) for kind in ("baseline", "found", "not found") if kind in simd}


def openblas_threads():
    """The thread count the OpenBLAS loaded in this process uses, or None when that cannot be asked."""
    return _ask_openblas("openblas_get_num_threads")


def openblas_thread_timeout():
    """How long (log2 of clock ticks) the loaded OpenBLAS lets an idle worker thread spin before it sleeps, or
    None when that cannot be asked: the OPENBLAS_THREAD_TIMEOUT it read, clamped to 4..30, or its built-in 28."""
    value = _ask_openblas("openblas_thread_timeout")
    if value is None:
        return None
    return min(max(value, 4), 30) if value > 0 else 28


def apply_openblas_thread_timeout():
    """Have the loaded OpenBLAS use OPENBLAS_THREAD_TIMEOUT as the environment holds it now; True if it had to.

    OpenBLAS reads its environment once, when numpy loads it, and its worker threads take the timeout when they
    start: a script that imports numpy before caffelite (pycaffe's habit) left OpenBLAS on its built-in 2^28 ticks.
    When the value OpenBLAS read differs, it is made to read its environment again and its workers are stopped;
    its next threaded product starts them anew with the new timeout (as after a fork). Only for OpenBLAS's own
    thread server (not its OpenMP or single-threaded builds), and meant for import time, when no product runs.
    """
    wanted = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
    read = _ask_openblas("openblas_thread_timeout")
    if read is None or not wanted.isdigit() or int(wanted) == read:
        return False
    if _ask_openblas("openblas_get_parallel") != 1:  # 1: OpenBLAS's pthreads server, which the timeout is for
        return False
    read_environment = _openblas_function("openblas_read_env")
    stop_workers = _openblas_function("blas_thread_shutdown_")
    if read_environment is None or stop_workers is None:
        return False
    read_environment.restype = None
    read_environment()
    stop_workers()
    return True


def _ask_openblas(name):
    """The int that OpenBLAS's function `name` (no arguments) returns, or None."""
    function = _openblas_function(name)
    if function is None:
        return None
    function.restype = ctypes.c_int
    return int(function())


def _openblas_function(name):
    """OpenBLAS's function `name` in the library loaded in this process (ctypes), or None.

    numpy's wheels bundle OpenBLAS under a prefixed, suffixed symbol name (scipy_openblas_..._64_); the library is
    found among the shared objects mapped into this process (Linux only).
    """
    for path in _loaded_libraries("openblas"):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_"):
                function = getattr(library, f"{prefix}{name}{suffix}", None)
                if function is not None:
                    return function
    return None


def _loaded_libraries(fragment):
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if fragment in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(path for path in paths if os.path.exists(path))


# pycaffe's mode switches, so scripts written for Caffe run unchanged: caffelite has one backend, the CPU.
def set_mode_cpu():
    """pycaffe's caffe.set_mode_cpu(): caffelite always runs on the CPU, so there is nothing to switch."""


def set_mode_gpu():
    """pycaffe's caffe.set_mode_gpu(): caffelite has no GPU backend; say so once and keep running on the CPU."""
    logging.getLogger("caffelite").warning("caffelite has no GPU backend: running on the CPU (numpy)")


def set_device(device_id):
    """pycaffe's caffe.set_device(id): only meaningful for GPUs, so only checked and ignored."""
    if int(device_id) < 0:
        raise ValueError(f"device id must be >= 0, got {device_id}")
