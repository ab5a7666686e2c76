"""caffelite.device: the CPU, numpy and BLAS facts behind `caffelite device_query`."""

import os
import subprocess
import sys

import pytest

import numpy as np

from caffelite import device

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
"""
ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_model_from_cpuinfo_texts():
    assert device.parse_cpuinfo(X86) == "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
    assert device.parse_cpuinfo(ARM) == "BCM2835"  # never the bare core index of `processor : 0`
    assert device.parse_cpuinfo("") == ""


def test_cpu_model_falls_back_to_platform_without_cpuinfo(tmp_path):
    assert device.cpu_model(tmp_path / "no_such_cpuinfo")  # some non-empty name from `platform`


def test_query_describes_this_process(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    info = device.query()
    assert info.numpy_version == np.__version__
    assert info.logical_cores == os.cpu_count() and 1 <= info.usable_cores <= info.logical_cores
    assert info.thread_variables["OPENBLAS_NUM_THREADS"] == "3" and "OMP_NUM_THREADS" not in info.thread_variables
    assert info.blas.get("name")  # numpy >= 1.25 reports the BLAS it was built with
    lines = info.lines()
    assert f"numpy: {np.__version__}" in lines
    assert any(line.startswith("CPU model: ") and len(line) > len("CPU model: ") for line in lines)
    assert any(line.startswith("BLAS: " + info.blas["name"]) for line in lines)
    assert "Threads: OPENBLAS_NUM_THREADS=3" in lines


def test_lines_say_when_no_thread_variable_is_set():
    info = device.DeviceInfo("cpu", 4, 2, "x86_64", "Linux", "3.11", "2.0", blas={}, thread_variables={})
    lines = info.lines()
    assert "Logical cores: 4 (2 usable by this process)" in lines and "BLAS: unknown" in lines
    assert any(line.startswith("Threads: none of OPENBLAS_NUM_THREADS") for line in lines)


def test_pycaffe_mode_switches_keep_scripts_running_on_the_cpu(caplog):
    import caffelite as caffe

    caffe.set_mode_cpu()
    caffe.set_device(0)
    caffe.set_mode_gpu()
    assert "no GPU backend" in caplog.text
    with pytest.raises(ValueError):
        caffe.set_device(-1)


def _in_fresh_python(code, **environment):
    """Run `code` in a new interpreter whose environment lacks OPENBLAS_THREAD_TIMEOUT unless given; its stdout."""
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(environment)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


REPORT = "import os; from caffelite import device; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], " \
         "device.openblas_thread_timeout())"


def test_importing_caffelite_first_shortens_the_blas_threads_idle_spin():
    setting, loaded = _in_fresh_python("import caffelite; " + REPORT)
    assert setting == "16"
    if device.openblas_threads() is not None:  # numpy's BLAS is OpenBLAS here: it read the setting
        assert loaded == "16"


def test_a_users_blas_timeout_wins_and_numpy_loaded_first_gets_it_too():
    setting, loaded = _in_fresh_python("import caffelite; " + REPORT, OPENBLAS_THREAD_TIMEOUT="20")
    assert setting == "20"
    setting, late = _in_fresh_python("import numpy; import caffelite; " + REPORT)
    assert setting == "16"
    if device.openblas_threads() is not None:
        # OpenBLAS read its environment before caffelite set the variable: caffelite had it read it again.
        assert (loaded, late) == ("20", "16")
    assert device.apply_openblas_thread_timeout() is False  # this process's OpenBLAS already holds the setting


SPIN = ("import os, time; import numpy as np; a = np.ones((1024, 1024), np.float32); a @ a; "
        "start = time.process_time(); time.sleep(0.3); "
        "print(time.process_time() - start, len(os.listdir('/proc/self/task')))")  # CPU time, OS threads


def test_with_numpy_imported_first_the_blas_threads_still_stop_spinning_soon_after_a_product():
    """CPU time of the whole process while the main thread sleeps right after a product: OpenBLAS's idle workers
    spin through 2^28 ticks (~0.1 s) by default, and through 2^16 (microseconds) once caffelite is imported."""
    if (device.openblas_threads() or 1) < 2:
        pytest.skip("numpy's BLAS here is not OpenBLAS running several threads, whose idle spin this is about")
    default, threads = _in_fresh_python(SPIN)
    if float(default) < 0.05:
        pytest.skip(f"OpenBLAS's idle threads do not spin here by default ({float(default):.3f} s of CPU)")
    numpy_first, restarted = _in_fresh_python("import numpy; import caffelite; " + SPIN)
    assert float(numpy_first) < 0.02 < float(default)
    assert restarted == threads  # the product started OpenBLAS's workers again: it still runs on every thread


def test_lines_report_the_blas_idle_spin_when_known():
    info = device.DeviceInfo("cpu", 2, 2, "x86_64", "Linux", "3.11", "2.0", blas_thread_timeout=16)
    assert any(line.startswith("BLAS idle threads spin for 2^16 clock ticks") for line in info.lines())
    info.blas_thread_timeout = None
    assert not any(line.startswith("BLAS idle") for line in info.lines())
