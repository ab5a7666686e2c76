"""`caffelite convert_imageset`, `compute_image_mean` and `extract_features`: Caffe's flags, logs and outputs."""

import re
import subprocess
import sys

import numpy as np
import pytest
from db_helpers import read_leveldb, read_lmdb
from PIL import Image

from caffelite.data.image_mean import compute_image_mean, mean_blobproto
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2
from caffelite_tools.main import main

GLOG = r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \w+\.py:\d+\] "


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "caffelite_tools.main", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def images(tmp_path):
    """Three 5 x 6 PNGs under images/ and a list file labelling them 0, 1, 2."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        path = tmp_path / "images" / f"im{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)).save(path)
        lines.append(f"im{i}.png {i}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    return tmp_path / "images", tmp_path / "list.txt"


def test_convert_mean_and_extract_end_to_end_with_caffes_flags_and_logs(images, tmp_path):
    root, list_file = images
    converted = run_cli("convert_imageset", "-shuffle", "-seed", 3, "-backend", "leveldb", "-resize_height=4",
                        "-resize_width=4", f"{root}/", list_file, tmp_path / "train_leveldb")
    assert converted.returncode == 0, converted.stderr
    for line in ("Shuffling data", r"A total of 3 images\.", r"Processed 3 files\."):
        assert re.search(GLOG + line + "$", converted.stderr, re.M), converted.stderr
    records = read_leveldb(tmp_path / "train_leveldb")
    order = np.random.default_rng(3).permutation(3)
    assert [key for key, _ in records] == [b"%08d_im%d.png" % (i, j) for i, j in enumerate(order)]
    datum = caffe_pb2.Datum.FromString(records[0][1])
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 4, order[0])

    mean_file = tmp_path / "mean.binaryproto"
    mean = run_cli("compute_image_mean", "-backend", "leveldb", tmp_path / "train_leveldb", mean_file)
    assert mean.returncode == 0, mean.stderr
    expected = compute_image_mean(tmp_path / "train_leveldb", "leveldb")
    assert mean_file.read_bytes() == mean_blobproto(expected.mean).SerializeToString()
    assert re.search(GLOG + r"Processed 3 files\.$", mean.stderr, re.M)
    assert re.search(GLOG + r"Number of channels: 3$", mean.stderr, re.M)
    for channel, value in enumerate(expected.channel_means):
        assert re.search(GLOG + rf"mean_value channel \[{channel}\]: {value:.6g}$", mean.stderr, re.M)

    model = tmp_path / "extract.prototxt"
    model.write_text(f"""
        layer {{ name: "data" type: "Data" top: "data" top: "label"
                data_param {{ source: "{tmp_path / 'train_leveldb'}" backend: LEVELDB batch_size: 2 }} }}
        layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param {{ num_output: 5 weight_filler {{ type: "xavier" }} }} }}
    """)
    net = Net(str(model), TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    net.layers[0].close()
    extracted = run_cli("extract_features", tmp_path / "w.caffemodel", model, "ip,label",
                        f"{tmp_path / 'ip_lmdb'},{tmp_path / 'label_lmdb'}", 3, "lmdb", "CPU")
    assert extracted.returncode == 0, extracted.stderr
    for line in (r"Using CPU", r"Extracting Features", r"Extracted features of 6 query images for feature blob ip",
                 r"Extracted features of 6 query images for feature blob label",
                 r"Successfully extracted the features!"):
        assert re.search(GLOG + line + "$", extracted.stderr, re.M), extracted.stderr
    ip = read_lmdb(tmp_path / "ip_lmdb")
    assert [key for key, _ in ip] == [b"%010d" % i for i in range(6)]
    assert caffe_pb2.Datum.FromString(ip[0][1]).channels == 5
    labels = [caffe_pb2.Datum.FromString(v).float_data[0] for _, v in read_lmdb(tmp_path / "label_lmdb")]
    assert labels == [float(order[i % 3]) for i in range(6)]


def test_convert_imageset_encoded_and_errors_are_one_line(images, tmp_path, capsys):
    root, list_file = images
    assert main(["convert_imageset", "--encode_type", "png", str(root), str(list_file), str(tmp_path / "e_lmdb")]) == 0
    err = capsys.readouterr().err
    assert "encode_type specified, assuming encoded=true." in err and "Processed 3 files." in err
    datum = caffe_pb2.Datum.FromString(read_lmdb(tmp_path / "e_lmdb")[0][1])
    assert datum.encoded and datum.data == (root / "im0.png").read_bytes()

    assert main(["convert_imageset", str(root), str(tmp_path / "nolist.txt"), str(tmp_path / "x_lmdb")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("caffelite convert_imageset: error: image list file ")
    assert lines[-1].endswith("nolist.txt' does not exist")

    Image.new("RGB", (9, 9)).save(root / "big.png")
    (tmp_path / "mixed.txt").write_text("im0.png 0\nbig.png 1\n")
    code = main(["convert_imageset", "-check_size", str(root), str(tmp_path / "mixed.txt"), str(tmp_path / "m_lmdb")])
    assert code == 1
    assert "error: check_size: image" in capsys.readouterr().err
    assert not (tmp_path / "m_lmdb").exists() and not (tmp_path / "x_lmdb").exists()


def test_compute_image_mean_without_an_output_file_only_logs(images, tmp_path, capsys):
    root, list_file = images
    assert main(["convert_imageset", str(root), str(list_file), str(tmp_path / "x_lmdb")]) == 0
    capsys.readouterr()
    assert main(["compute_image_mean", str(tmp_path / "x_lmdb")]) == 0
    err = capsys.readouterr().err
    assert "Write to" not in err and "mean_value channel [2]: " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "list.txt", "x_lmdb"]
    assert main(["compute_image_mean", "-backend", "leveldb", str(tmp_path / "x_lmdb")]) == 1
    assert "as a LevelDB database: it has no CURRENT file" in capsys.readouterr().err


def test_extract_features_accepts_gpu_and_checks_its_arguments(images, tmp_path, capsys):
    root, list_file = images
    assert main(["convert_imageset", str(root), str(list_file), str(tmp_path / "x_lmdb")]) == 0
    model = tmp_path / "m.prototxt"
    model.write_text(f"""
        layer {{ name: "data" type: "Data" top: "data" top: "label"
                data_param {{ source: "{tmp_path / 'x_lmdb'}" backend: LMDB batch_size: 3 }} }}
    """)
    net = Net(str(model), TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    net.layers[0].close()
    capsys.readouterr()
    args = ["extract_features", str(tmp_path / "w.caffemodel"), str(model)]
    assert main(args + ["data", str(tmp_path / "f_leveldb"), "1", "leveldb", "GPU", "1"]) == 0
    assert "GPU mode (device 1) requested: caffelite computes on the CPU" in capsys.readouterr().err
    datum = caffe_pb2.Datum.FromString(read_leveldb(tmp_path / "f_leveldb")[2][1])
    assert (datum.channels, datum.height, datum.width, len(datum.float_data)) == (3, 5, 6, 90)

    assert main(args + ["data,label", str(tmp_path / "g_lmdb"), "1", "lmdb"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("caffelite extract_features: error: the number of blob names (2) and dataset names (1) "
                   "must be equal")
    assert main(args + ["fc7", str(tmp_path / "g_lmdb"), "1", "lmdb"]) == 1
    assert "error: unknown feature blob name 'fc7'" in capsys.readouterr().err
    assert not (tmp_path / "g_lmdb").exists()
