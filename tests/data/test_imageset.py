"""caffelite.data.imageset: image files + a list file -> a database of Datum records, as convert_imageset makes it."""

import io
import logging

import numpy as np
import pytest
from db_helpers import read_leveldb, read_lmdb
from PIL import Image

from caffelite.data import db
from caffelite.data.datum import datum_to_array
from caffelite.data.image import resize_linear
from caffelite.data.imageset import convert_imageset, read_image_list, read_image_to_datum
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.prototxt import parse_text
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2


def bgr(rgb):
    """(H, W, 3) RGB -> (3, H, W) BGR, Caffe's layout."""
    return np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1))


def save(path, pixels, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def pillow_bgr(path):
    """An independent reference decode: Pillow's RGB, reordered to BGR planes."""
    return bgr(np.asarray(Image.open(path).convert("RGB")))


def make_images(root, sizes=((4, 6), (4, 6), (4, 6)), seed=0):
    """PNGs and JPEGs of random pixels under `root`; returns [(relative path, label, RGB pixels)]."""
    rng = np.random.default_rng(seed)
    entries = []
    for i, (h, w) in enumerate(sizes):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        name = f"class{i % 2}/img {i}.png" if i % 3 != 2 else f"class{i % 2}/img{i}.jpg"
        save(root / name, pixels)
        entries.append((name, 10 + i, pixels))
    return entries


def write_list(path, entries):
    path.write_text("".join(f"{name} {label}\n" for name, label, *_ in entries))
    return path


@pytest.fixture
def imageset(tmp_path):
    root = tmp_path / "images"
    entries = make_images(root)
    return root, write_list(tmp_path / "list.txt", entries), entries


def test_every_image_becomes_one_datum_under_its_list_index_and_path(imageset, tmp_path):
    root, list_file, entries = imageset
    progress = []
    result = convert_imageset(f"{root}/", list_file, tmp_path / "out_lmdb", progress=lambda *a: progress.append(a))
    assert (result.count, result.total, result.skipped, result.db_path) == (3, 3, (), tmp_path / "out_lmdb")
    assert progress == [(0, 3), (3, 3)]
    records = read_lmdb(tmp_path / "out_lmdb")
    assert [key for key, _ in records] == [b"00000000_class0/img 0.png", b"00000001_class1/img 1.png",
                                           b"00000002_class0/img2.jpg"]
    for (key, value), (name, label, pixels) in zip(records, entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 6, label)
        assert datum.HasField("encoded") and not datum.encoded and len(datum.float_data) == 0
        if name.endswith(".png"):
            assert datum.data == bgr(pixels).tobytes()  # lossless: exactly the pixels saved
        else:
            assert datum.data == pillow_bgr(root / name).tobytes()
        assert value == read_image_to_datum(root / name, label).SerializeToString()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_keys_keep_the_list_order_whatever_the_names(tmp_path):
    pixels = np.zeros((2, 2, 3), np.uint8)
    names = ["zebra.png", "apple.png", "mango.png"]
    for name in names:
        save(tmp_path / "img" / name, pixels)
    list_file = write_list(tmp_path / "list.txt", [(name, i) for i, name in enumerate(names)])
    convert_imageset(tmp_path / "img", list_file, tmp_path / "out_lmdb")  # a root without its slash works too
    records = read_lmdb(tmp_path / "out_lmdb")
    assert [key for key, _ in records] == [b"%08d_%s" % (i, n.encode()) for i, n in enumerate(names)]
    assert [caffe_pb2.Datum.FromString(v).label for _, v in records] == [0, 1, 2]


def test_shuffle_is_seeded_and_labels_follow_their_images(tmp_path):
    entries = []
    for i in range(8):
        pixels = np.full((2, 3, 3), i * 20, np.uint8)
        save(tmp_path / "img" / f"{i}.png", pixels)
        entries.append((f"{i}.png", i))
    list_file = write_list(tmp_path / "list.txt", entries)
    convert_imageset(tmp_path / "img/", list_file, tmp_path / "a_lmdb", shuffle=True, seed=7)
    convert_imageset(tmp_path / "img/", list_file, tmp_path / "b_lmdb", shuffle=True, seed=7)
    records = read_lmdb(tmp_path / "a_lmdb")
    assert records == read_lmdb(tmp_path / "b_lmdb")
    order = np.random.default_rng(7).permutation(8)
    assert [key for key, _ in records] == [b"%08d_%d.png" % (i, j) for i, j in enumerate(order)]
    for key, value in records:
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.data == bytes([datum.label * 20]) * 18


def test_gray_stores_one_channel(imageset, tmp_path):
    root, list_file, entries = imageset
    convert_imageset(root, list_file, tmp_path / "gray_lmdb", gray=True)
    for (_, value), (name, _, _) in zip(read_lmdb(tmp_path / "gray_lmdb"), entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width) == (1, 4, 6)
        assert datum.data == np.asarray(Image.open(root / name).convert("L")).tobytes()


def test_resize_uses_opencv_linear_resampling(imageset, tmp_path):
    root, list_file, entries = imageset
    convert_imageset(root, list_file, tmp_path / "small_lmdb", resize_height=3, resize_width=5)
    for (_, value), (name, _, _) in zip(read_lmdb(tmp_path / "small_lmdb"), entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width) == (3, 3, 5)
        assert datum.data == resize_linear(pillow_bgr(root / name), 3, 5).tobytes()


def test_encoded_without_resize_stores_the_files_own_bytes(imageset, tmp_path):
    root, list_file, entries = imageset
    convert_imageset(root, list_file, tmp_path / "enc_lmdb", encoded=True)
    for (_, value), (name, label, _) in zip(read_lmdb(tmp_path / "enc_lmdb"), entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.encoded and datum.label == label and datum.data == (root / name).read_bytes()
        # Caffe sets no dims on an encoded datum: the Data layer learns them by decoding.
        assert not any(datum.HasField(f) for f in ("channels", "height", "width"))
        np.testing.assert_array_equal(datum_to_array(datum), pillow_bgr(root / name))


def test_encoded_with_resize_compresses_the_resized_image_in_the_files_format(imageset, tmp_path):
    root, list_file, entries = imageset
    convert_imageset(root, list_file, tmp_path / "enc_lmdb", encoded=True, resize_height=5, resize_width=7)
    for (_, value), (name, _, _) in zip(read_lmdb(tmp_path / "enc_lmdb"), entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.encoded
        expected = resize_linear(pillow_bgr(root / name), 5, 7)
        if name.endswith(".png"):
            assert datum.data.startswith(b"\x89PNG")
            np.testing.assert_array_equal(datum_to_array(datum), expected)  # lossless
        else:
            assert datum.data.startswith(b"\xff\xd8")  # a JPEG again (quality 95): close, not exact
            assert datum_to_array(datum).shape == (3, 5, 7)
            assert np.abs(datum_to_array(datum).astype(int) - expected).mean() < 8


def test_encode_type_implies_encoded_and_keeps_files_already_in_that_format(imageset, tmp_path):
    root, list_file, entries = imageset
    convert_imageset(root, list_file, tmp_path / "png_lmdb", encode_type="PNG")
    for (_, value), (name, _, _) in zip(read_lmdb(tmp_path / "png_lmdb"), entries):
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.encoded and datum.data.startswith(b"\x89PNG")
        if name.endswith(".png"):
            assert datum.data == (root / name).read_bytes()
        else:  # the JPEG's decoded pixels, losslessly re-encoded
            np.testing.assert_array_equal(datum_to_array(datum), pillow_bgr(root / name))


def test_a_jpeg_extension_matches_the_jpg_encoding(tmp_path):
    path = save(tmp_path / "photo.JPEG", np.zeros((3, 3, 3), np.uint8), fmt="JPEG")
    datum = read_image_to_datum(path, 1, encoding="jpg")
    assert datum.encoded and datum.data == path.read_bytes()


def test_check_size_stops_at_the_first_image_of_another_shape_and_leaves_nothing(tmp_path):
    entries = make_images(tmp_path / "img", sizes=((4, 6), (4, 6), (5, 6)))
    list_file = write_list(tmp_path / "list.txt", entries)
    with pytest.raises(CaffeliteError, match=r"check_size: image .*img2\.jpg' \(.*list\.txt:3\) is 3x5x6 .*"
                                             r"but the first image is 3x4x6"):
        convert_imageset(tmp_path / "img", list_file, tmp_path / "out_lmdb", check_size=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "list.txt"]
    convert_imageset(tmp_path / "img", list_file, tmp_path / "out_lmdb")  # without the check, any sizes go
    assert len(read_lmdb(tmp_path / "out_lmdb")) == 3
    # Same sizes pass the check (resizing makes them so).
    convert_imageset(tmp_path / "img", list_file, tmp_path / "ok_lmdb", check_size=True, resize_height=2,
                     resize_width=2)


def test_unreadable_images_are_logged_and_skipped_keeping_the_other_keys(imageset, tmp_path, caplog):
    root, list_file, entries = imageset
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    lines = [entries[0], ("missing.png", 1), ("broken.png", 2), entries[2]]
    list_file = write_list(tmp_path / "list2.txt", lines)
    with caplog.at_level(logging.ERROR, logger="caffelite"):
        result = convert_imageset(root, list_file, tmp_path / "out_lmdb")
    assert (result.count, result.total, result.skipped) == (2, 4, ("missing.png", "broken.png"))
    assert [key for key, _ in read_lmdb(tmp_path / "out_lmdb")] == [b"00000000_" + entries[0][0].encode(),
                                                                     b"00000003_" + entries[2][0].encode()]
    assert "Could not open or find file" in caplog.text and "missing.png" in caplog.text
    write_list(tmp_path / "none.txt", [("missing.png", 1)])
    with pytest.raises(CaffeliteError, match=r"none of the 1 images listed in .*none\.txt' could be read"):
        convert_imageset(root, tmp_path / "none.txt", tmp_path / "none_lmdb")
    assert not (tmp_path / "none_lmdb").exists()


def test_leveldb_backend_holds_the_same_records(imageset, tmp_path):
    root, list_file, _ = imageset
    convert_imageset(root, list_file, tmp_path / "out_lmdb")
    convert_imageset(root, list_file, tmp_path / "out_leveldb", backend="leveldb")
    assert read_leveldb(tmp_path / "out_leveldb") == read_lmdb(tmp_path / "out_lmdb")


@pytest.mark.parametrize("backend", ["LMDB", "LEVELDB"])
def test_a_data_layer_reads_the_converted_images(imageset, tmp_path, backend):
    root, list_file, entries = imageset
    source = tmp_path / f"out_{backend}"
    convert_imageset(root, list_file, source, backend=backend.lower(), encoded=backend == "LEVELDB")
    net = Net(parse_text(f"""
        layer {{ name: "data" type: "Data" top: "data" top: "label"
                data_param {{ source: "{source}" backend: {backend} batch_size: 3 }} }}
    """, caffe_pb2.NetParameter()), TEST)
    try:
        net.forward_range()
        expected = [pillow_bgr(root / name) for name, _, _ in entries]
        np.testing.assert_array_equal(net.blobs["data"].data, np.stack(expected).astype(np.float32))
        np.testing.assert_array_equal(net.blobs["label"].data, [10, 11, 12])
    finally:
        net.layers[0].close()


def test_list_file_rules_and_errors(tmp_path):
    (tmp_path / "list.txt").write_text("a b/my cat.png 3\r\n\nplain.jpg 4.0\nlonely.png\n  \nneg.png -2\n")
    assert read_image_list(tmp_path / "list.txt") == [
        ("a b/my cat.png", 3, 1), ("plain.jpg", 4, 3), ("lonely.png", 0, 4), ("neg.png", -2, 6),
    ]
    (tmp_path / "bad.txt").write_text("ok.png 1\nx.png label\n")
    with pytest.raises(FileFormatError, match=r"bad\.txt:2: expected '<image path> <integer label>', got 'x.png lab"):
        read_image_list(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(FileFormatError, match="lists no images"):
        read_image_list(tmp_path / "empty.txt")
    with pytest.raises(CaffeliteError, match="image list file .*nowhere.txt' does not exist"):
        read_image_list(tmp_path / "nowhere.txt")
    (tmp_path / "huge.txt").write_text("x.png 4294967296\n")
    with pytest.raises(FileFormatError, match="does not fit a Datum's int32 label"):
        read_image_list(tmp_path / "huge.txt")


def test_options_are_checked_before_anything_is_written(imageset, tmp_path):
    root, list_file, _ = imageset
    with pytest.raises(CaffeliteError, match="unknown image encoding 'gif'"):
        convert_imageset(root, list_file, tmp_path / "a_lmdb", encode_type="gif")
    with pytest.raises(CaffeliteError, match="set resize_height and resize_width together"):
        convert_imageset(root, list_file, tmp_path / "a_lmdb", resize_height=3)
    with pytest.raises(CaffeliteError, match="unknown database backend 'rocksdb'"):
        convert_imageset(root, list_file, tmp_path / "a_lmdb", backend="rocksdb")
    (tmp_path / "taken_lmdb").mkdir()
    with pytest.raises(CaffeliteError, match="already exists; refusing to overwrite"):
        convert_imageset(root, list_file, tmp_path / "taken_lmdb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "list.txt", "taken_lmdb"]


def test_an_extensionless_file_is_kept_as_is_when_encoded(tmp_path, caplog):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(buffer, format="PNG")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "noext").write_bytes(buffer.getvalue())
    list_file = write_list(tmp_path / "list.txt", [("noext", 5)])
    with caplog.at_level(logging.WARNING, logger="caffelite"):
        convert_imageset(tmp_path / "img", list_file, tmp_path / "out_lmdb", encoded=True)
    assert "Failed to guess the encoding of 'noext'" in caplog.text
    datum = caffe_pb2.Datum.FromString(read_lmdb(tmp_path / "out_lmdb")[0][1])
    assert datum.encoded and datum.data == buffer.getvalue()
    with pytest.raises(CaffeliteError, match="cannot guess the encoding of 'noext'.*pass --encode_type"):
        convert_imageset(tmp_path / "img", list_file, tmp_path / "r_lmdb", encoded=True, resize_height=1,
                         resize_width=1)


def test_writing_leveldb_without_plyvel_fails_before_any_work(imageset, tmp_path, monkeypatch):
    root, list_file, _ = imageset
    monkeypatch.setattr(db, "_plyvel", lambda prefix="": (_ for _ in ()).throw(CaffeliteError(prefix + "no plyvel")))
    with pytest.raises(CaffeliteError, match="no plyvel"):
        convert_imageset(root, list_file, tmp_path / "out_leveldb", backend="leveldb")
    assert not (tmp_path / "out_leveldb").exists()
