"""ImageData: image files from a `path label` list, read as OpenCV does (BGR, INTER_LINEAR resize), prefetched."""

import gc

import numpy as np
import pytest
from layer_harness import make_layer, run_forward
from PIL import Image
from shared_data import shared_path

from caffelite.data.image import resize_linear
from caffelite.errors import CaffeliteError, FileFormatError, NetError
from caffelite.phase import TRAIN


def write_images(folder, count=5, size=(4, 6), seed=0):
    """`count` random RGB PNGs of (height, width) `size`; returns their (H, W, 3) RGB pixel arrays."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(count,) + size + (3,), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image, "RGB").save(folder / f"img {i}.png")  # a space in the name, as Caffe allows
    return pixels


def write_list(path, entries):
    path.write_text("".join(f"{name} {label}\n" for name, label in entries))
    return path


def image_layer(source, batch_size=2, extra="", transform="", phase=None, seed=1701):
    text = f"""
        name: "img" type: "ImageData" top: "data" top: "label"
        image_data_param {{ source: "{source}" batch_size: {batch_size} {extra} }}
        transform_param {{ {transform} }}
    """
    return make_layer(text, [], seed=seed, **({} if phase is None else {"phase": phase}))


def bgr(rgb):
    """(N, H, W, 3) RGB -> (N, 3, H, W) BGR, the layout Caffe's OpenCV reads give."""
    return rgb[..., ::-1].transpose(0, 3, 1, 2).astype(np.float64)


@pytest.fixture
def images(tmp_path):
    pixels = write_images(tmp_path)
    listing = write_list(tmp_path / "list.txt", [(f"img {i}.png", 10 + i) for i in range(5)])
    return tmp_path, listing, pixels


def test_reads_bgr_images_in_list_order_with_labels_and_wraps(images):
    folder, listing, pixels = images
    layer, bottom, top = image_layer(listing, batch_size=2, extra=f'root_folder: "{folder}/"')
    try:
        assert top[0].shape == (2, 3, 4, 6) and top[1].shape == (2,)
        for indices in ([0, 1], [2, 3], [4, 0], [1, 2]):
            data, labels = run_forward(layer, bottom, top)
            np.testing.assert_array_equal(data, bgr(pixels[indices]))
            np.testing.assert_array_equal(labels, 10 + np.array(indices))
    finally:
        layer.close()


def test_grey_resize_and_transform(images):
    folder, listing, pixels = images
    layer, bottom, top = image_layer(
        listing, batch_size=3, extra=f'root_folder: "{folder}/" is_color: false new_height: 8 new_width: 3',
        transform="scale: 0.5 mean_value: 100",
    )
    try:
        assert top[0].shape == (3, 1, 8, 3)
        data, _ = run_forward(layer, bottom, top)
        grey = np.stack([np.asarray(Image.fromarray(p).convert("L")) for p in pixels[:3]])[:, None]
        expected = (resize_linear_reference(grey, 8, 3) - 100) * 0.5
        np.testing.assert_allclose(data, expected, atol=0.5 + 1e-9)  # fixed point vs float: at most one level
    finally:
        layer.close()


def test_shuffle_and_rand_skip_are_seeded(images):
    folder, listing, _ = images

    def labels(seed, extra):
        layer, bottom, top = image_layer(listing, batch_size=5, extra=f'root_folder: "{folder}/" {extra}', seed=seed)
        try:
            return [run_forward(layer, bottom, top)[1].tolist() for _ in range(3)]
        finally:
            layer.close()

    shuffled = labels(4, "shuffle: true")
    assert all(sorted(batch) == [10, 11, 12, 13, 14] for batch in shuffled)
    assert len({tuple(batch) for batch in shuffled}) > 1  # reshuffled at every pass
    assert labels(4, "shuffle: true") == shuffled
    skipped = labels(9, "rand_skip: 5")
    skip = int(skipped[0][0]) - 10
    assert 0 <= skip < 5
    assert skipped[0] == [10 + (skip + i) % 5 for i in range(5)]


def test_random_crop_and_mirror_in_train(images):
    folder, listing, pixels = images
    layer, bottom, top = image_layer(listing, batch_size=5, extra=f'root_folder: "{folder}/"',
                                     transform="crop_size: 3 mirror: true", phase=TRAIN)
    try:
        assert top[0].shape == (5, 3, 3, 3)
        data, _ = run_forward(layer, bottom, top)
        full = bgr(pixels)
        for item, source in zip(data, full):
            windows = [source[:, y : y + 3, x : x + 3] for y in range(2) for x in range(4)]
            assert any(np.array_equal(item, w) or np.array_equal(item, w[..., ::-1]) for w in windows)
    finally:
        layer.close()


def test_each_batch_takes_the_shape_of_its_first_image(tmp_path):
    Image.new("RGB", (5, 4), (1, 2, 3)).save(tmp_path / "a.png")
    Image.new("RGB", (3, 2), (4, 5, 6)).save(tmp_path / "b.png")
    listing = write_list(tmp_path / "list.txt", [(tmp_path / "a.png", 0), (tmp_path / "b.png", 1)])
    layer, bottom, top = image_layer(listing, batch_size=1)
    try:
        assert top[0].shape == (1, 3, 4, 5)
        first, _ = run_forward(layer, bottom, top)
        second, _ = run_forward(layer, bottom, top)
        assert first.shape == (1, 3, 4, 5) and second.shape == (1, 3, 2, 3)
        np.testing.assert_array_equal(second[0, :, 0, 0], [6, 5, 4])  # BGR
    finally:
        layer.close()
    layer, bottom, top = image_layer(listing, batch_size=2)
    try:
        with pytest.raises(FileFormatError, match=r"list.txt:2: image has shape \(3, 2, 3\), but this batch's first"):
            run_forward(layer, bottom, top)
    finally:
        layer.close()


def test_missing_files_are_named_with_the_list_line(images):
    folder, listing, _ = images
    with pytest.raises(CaffeliteError, match=r"layer 'img' \(ImageData\): image list file .*nope.txt' does not exist"):
        image_layer(folder / "nope.txt")
    write_list(listing, [(folder / "img 0.png", 0), (folder / "img 1.png", 1), (folder / "gone.png", 2)])
    layer, bottom, top = image_layer(listing, batch_size=3)
    try:
        with pytest.raises(CaffeliteError, match=r"list.txt:3: image file '.*gone.png' does not exist"):
            run_forward(layer, bottom, top)
    finally:
        layer.close()
    write_list(listing, [(folder / "gone.png", 0)])
    with pytest.raises(CaffeliteError, match=r"list.txt:1: image file '.*gone.png' does not exist"):
        image_layer(listing)  # the first image is read at setup


def test_bad_list_lines_and_options(images):
    folder, listing, _ = images
    listing.write_text(f"{folder}/img 0.png 1\n{folder}/img 1.png cat\n")
    with pytest.raises(FileFormatError, match=r"list.txt:2: expected '<image path> <integer label>'"):
        image_layer(listing)
    # Caffe reads labels with atoi: "2.0" is 2, and a line without a label is label 0.
    (folder / "nospace.png").write_bytes((folder / "img 0.png").read_bytes())
    listing.write_text(f"{folder}/img 0.png 2.0\n{folder}/nospace.png\n")
    layer, bottom, top = image_layer(listing, batch_size=2)
    try:
        np.testing.assert_array_equal(run_forward(layer, bottom, top)[1], [2, 0])
    finally:
        layer.close()
    listing.write_text("\n")
    with pytest.raises(FileFormatError, match="lists no images"):
        image_layer(listing)
    write_list(listing, [(folder / "img 0.png", 0)])
    with pytest.raises(NetError, match="set new_height and new_width together"):
        image_layer(listing, extra="new_height: 5")
    with pytest.raises(NetError, match="batch_size must be positive"):
        image_layer(listing, batch_size=0)
    refused = 0
    for seed in range(10):  # with a single image, any skip drawn above 0 is too many
        try:
            layer = image_layer(listing, extra="rand_skip: 5", seed=seed)[0]
        except NetError as error:
            assert "rand_skip drew" in str(error) and "lists only 1 images" in str(error)
            refused += 1
        else:
            layer.close()
    assert refused > 0
    (folder / "junk.png").write_bytes(b"not an image")
    write_list(listing, [(folder / "junk.png", 0)])
    with pytest.raises(FileFormatError, match=r"list.txt:1: cannot decode image file '.*junk.png'"):
        image_layer(listing)


def test_caffe_example_images_like_caffes_tests(tmp_path):
    folder = shared_path("conformance", "bvlc_caffe", "examples", "images")
    listing = write_list(tmp_path / "cats.txt", [(folder / "cat.jpg", i) for i in range(5)])
    layer, bottom, top = image_layer(listing, batch_size=5)
    try:
        assert top[0].shape == (5, 3, 360, 480)
        data, labels = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(labels, range(5))
        rgb = np.asarray(Image.open(folder / "cat.jpg"))
        np.testing.assert_array_equal(data[0], rgb[..., ::-1].transpose(2, 0, 1))
    finally:
        layer.close()
    layer, bottom, top = image_layer(listing, batch_size=5, extra="new_height: 256 new_width: 256")
    try:
        assert top[0].shape == (5, 3, 256, 256)
    finally:
        layer.close()
    listing = write_list(tmp_path / "two.txt", [(folder / "cat.jpg", 0), (folder / "fish-bike.jpg", 1)])
    layer, bottom, top = image_layer(listing, batch_size=1)
    try:
        assert run_forward(layer, bottom, top)[0].shape == (1, 3, 360, 480)
        assert run_forward(layer, bottom, top)[0].shape == (1, 3, 323, 481)
    finally:
        layer.close()


def resize_linear_reference(images, height, width):
    """OpenCV's INTER_LINEAR in plain floats, one output pixel at a time: source = (dst + 0.5) * in/out - 0.5,
    edges clamped."""
    num, channels, src_h, src_w = images.shape

    def taps(dst, src, size):
        f = (dst + 0.5) * src / size - 0.5
        i = int(np.floor(f))
        if i < 0:
            return 0, 0, 0.0
        if i >= src - 1:
            return src - 1, src - 1, 0.0
        return i, i + 1, f - i

    out = np.zeros((num, channels, height, width))
    for y in range(height):
        y0, y1, fy = taps(y, src_h, height)
        for x in range(width):
            x0, x1, fx = taps(x, src_w, width)
            top = images[:, :, y0, x0] * (1 - fx) + images[:, :, y0, x1] * fx
            bottom = images[:, :, y1, x0] * (1 - fx) + images[:, :, y1, x1] * fx
            out[:, :, y, x] = np.floor(top * (1 - fy) + bottom * fy + 0.5)
    return out


@pytest.mark.parametrize("size", [(7, 5), (2, 3), (9, 16), (3, 1), (4, 6)])
def test_resize_linear_matches_opencvs_sampling(size):
    image = np.random.default_rng(size[0] * 31 + size[1]).integers(0, 256, size=(1, 3, 4, 6), dtype=np.uint8)
    got = resize_linear(image[0], *size)
    assert got.dtype == np.uint8 and got.shape == (3,) + size
    expected = resize_linear_reference(image.astype(np.float64), *size)[0]
    assert np.abs(got - expected).max() <= 1
    if size == (4, 6):
        np.testing.assert_array_equal(got, image[0])


def test_resize_linear_halving_averages_two_by_two_blocks_exactly():
    image = np.random.default_rng(5).integers(0, 256, size=(2, 6, 8), dtype=np.uint8)
    blocks = image.reshape(2, 3, 2, 4, 2).astype(np.int64).sum(axis=(2, 4))
    np.testing.assert_array_equal(resize_linear(image, 3, 4), (blocks + 2) // 4)


def test_close_and_garbage_collection_stop_the_prefetch_thread(images):
    folder, listing, _ = images
    layer, bottom, top = image_layer(listing, extra=f'root_folder: "{folder}/"')
    layer.close()
    layer.close()
    assert not layer._prefetcher.alive
    with pytest.raises(NetError, match="closed"):
        layer.forward(bottom, top)
    layer = image_layer(listing, extra=f'root_folder: "{folder}/"')[0]
    thread = layer._prefetcher._thread
    del layer
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
