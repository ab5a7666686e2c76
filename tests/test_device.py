"""caffelite.device: the CPU, numpy and BLAS facts behind `caffelite device_query`."""

import os
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
