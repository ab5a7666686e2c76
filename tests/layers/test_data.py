"""Data layer: batches of Datum records from an LMDB, in key order with wrap-around, transformed and prefetched."""

import gc
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from layer_harness import make_layer, run_forward

import caffelite.data
from caffelite.data import db
from caffelite.data.datum import array_to_datum
from caffelite.errors import CaffeliteError, FileFormatError, NetError
from caffelite.phase import TEST, TRAIN

ITEM_SHAPE = (2, 3, 4)


def make_dataset(path, count=10, seed=0, bad=None, float_items=False):
    """An LMDB of `count` random (2, 3, 4) items labelled 0..count-1; record `bad` holds garbage bytes."""
    items = np.random.default_rng(seed).integers(0, 256, size=(count,) + ITEM_SHAPE, dtype=np.uint8)
    with db.open_writer(path) as writer:
        for i, item in enumerate(items):
            value = array_to_datum(item.astype(np.float32) if float_items else item, label=i).SerializeToString()
            writer.put(b"%08d" % i, b"\xff\xff\xff" if i == bad else value)
    return items


def data_layer(source, batch_size=4, transform="", extra="", tops=("data", "label"), phase=TEST, seed=1701):
    top_text = " ".join(f'top: "{name}"' for name in tops)
    text = f"""
        name: "data" type: "Data" {top_text}
        data_param {{ source: "{source}" backend: LMDB batch_size: {batch_size} {extra} }}
        transform_param {{ {transform} }}
    """
    return make_layer(text, [], phase=phase, seed=seed)


def test_shapes_contents_in_order_with_wrap_around_and_labels(tmp_path):
    items = make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb")
    try:
        assert top[0].shape == (4,) + ITEM_SHAPE and top[1].shape == (4,)
        expected_order = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1], [2, 3, 4, 5]]
        for indices in expected_order:
            data, labels = run_forward(layer, bottom, top)
            assert data.dtype == np.float64
            np.testing.assert_array_equal(data, items[indices].astype(np.float64))
            np.testing.assert_array_equal(labels, indices)
    finally:
        layer.close()


def test_scale_is_applied_and_one_top_means_no_labels(tmp_path):
    items = make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=3, transform="scale: 0.00390625", tops=("data",))
    try:
        (data,) = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(data, items[:3] * 0.00390625)
    finally:
        layer.close()


def test_float_data_records(tmp_path):
    items = make_dataset(tmp_path / "x_lmdb", count=3, float_items=True)
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=2, transform="mean_value: 10")
    try:
        data, labels = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(data, items[:2] - 10.0)
    finally:
        layer.close()


def test_crop_in_test_phase_sets_the_shape(tmp_path):
    items = make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=2, transform="crop_size: 2")
    try:
        assert top[0].shape == (2, 2, 2, 2)
        data, _ = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(data, items[:2, :, 0:2, 1:3])  # centre: ((3-2)//2, (4-2)//2)
    finally:
        layer.close()


def test_random_transforms_and_rand_skip_repeat_for_a_seed(tmp_path):
    make_dataset(tmp_path / "x_lmdb", count=30)

    def batches(seed):
        layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=5, phase=TRAIN, seed=seed,
                                        transform="crop_size: 2 mirror: true", extra="rand_skip: 20")
        try:
            time.sleep(0.05 * (seed % 2))  # thread timing must not matter
            return [run_forward(layer, bottom, top) for _ in range(4)]
        finally:
            layer.close()

    first, again, other = batches(5), batches(5), batches(6)
    for (d1, l1), (d2, l2) in zip(first, again):
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(l1, l2)
    skip = int(first[0][1][0])
    assert 0 <= skip < 20
    np.testing.assert_array_equal(first[0][1], (skip + np.arange(5)) % 30)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_close_stops_the_prefetch_thread(tmp_path):
    make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", extra="prefetch: 2")
    run_forward(layer, bottom, top)
    started = time.perf_counter()
    layer.close()
    layer.close()
    assert time.perf_counter() - started < 2
    assert not layer._prefetcher.alive
    with pytest.raises(NetError, match="closed"):
        layer.forward(bottom, top)


def test_garbage_collection_stops_the_prefetch_thread(tmp_path):
    make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb")
    thread = layer._prefetcher._thread
    del layer
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_interpreter_exit_does_not_hang(tmp_path):
    make_dataset(tmp_path / "x_lmdb")
    root = Path(caffelite.data.__file__).resolve().parents[2]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(root)!r})
        from google.protobuf import text_format
        from caffelite.layers.data import Data
        from caffelite.proto import caffe_pb2
        from caffelite.tensor import Tensor
        param = text_format.Parse('name: "d" type: "Data" top: "data" top: "label" '
                                  'data_param {{ source: "{tmp_path / 'x_lmdb'}" backend: LMDB batch_size: 2 }}',
                                  caffe_pb2.LayerParameter())
        layer = Data(param)
        top = [Tensor(), Tensor()]
        layer.setup([], top)
        layer.forward([], top)
        print("done", top[1].data.tolist())
    """)
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "done [0.0, 1.0]"


def test_a_bad_record_surfaces_in_forward_as_the_original_error(tmp_path):
    make_dataset(tmp_path / "x_lmdb", bad=5)
    layer, bottom, top = data_layer(tmp_path / "x_lmdb")
    try:
        run_forward(layer, bottom, top)  # records 0-3 are fine
        for _ in range(2):  # and the error stays
            with pytest.raises(FileFormatError, match=r"layer 'data' \(Data\): record '00000005' of .* is not a Datum"):
                run_forward(layer, bottom, top)
    finally:
        layer.close()


def test_an_exception_in_the_worker_is_reraised_unchanged(tmp_path, monkeypatch):
    make_dataset(tmp_path / "x_lmdb")
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=2, extra="prefetch: 1")
    try:
        boom = ValueError("boom")

        def failing_transform(batch, out=None):
            raise boom

        # Batches already queued come first; then the failure arrives.
        monkeypatch.setattr(layer._prefetcher._load_batch.transformer, "transform", failing_transform)
        with pytest.raises(ValueError) as caught:
            for _ in range(5):
                run_forward(layer, bottom, top)
        assert caught.value is boom
    finally:
        layer.close()


def test_records_of_different_shapes_in_one_batch(tmp_path):
    with db.open_writer(tmp_path / "x_lmdb") as writer:
        writer.put(b"0", array_to_datum(np.zeros((1, 2, 2), np.uint8), 0).SerializeToString())
        writer.put(b"1", array_to_datum(np.zeros((1, 3, 3), np.uint8), 1).SerializeToString())
    layer, bottom, top = data_layer(tmp_path / "x_lmdb", batch_size=2)
    try:
        with pytest.raises(FileFormatError, match=r"record '1' .* has shape \(1, 3, 3\), but this batch's first"):
            run_forward(layer, bottom, top)
    finally:
        layer.close()


def test_missing_source_and_wrong_backend_errors_name_the_layer(tmp_path):
    with pytest.raises(CaffeliteError, match=r"layer 'data' \(Data\): data source .*absent_lmdb' does not exist"):
        data_layer(tmp_path / "absent_lmdb")
    make_dataset(tmp_path / "x_lmdb")
    text = f'name: "data" type: "Data" top: "data" data_param {{ source: "{tmp_path / "x_lmdb"}" batch_size: 2 }}'
    with pytest.raises(CaffeliteError, match=r"layer 'data' \(Data\): cannot open .*x_lmdb' as a LevelDB database: "
                                             r".*set `backend: LMDB`"):
        make_layer(text, [])  # backend defaults to LEVELDB in the schema


def test_batch_size_must_be_positive(tmp_path):
    make_dataset(tmp_path / "x_lmdb")
    with pytest.raises(NetError, match="batch_size must be positive"):
        data_layer(tmp_path / "x_lmdb", batch_size=0)
