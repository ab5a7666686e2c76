"""WindowData: foreground/background windows by overlap, sampled at fg_fraction, warped (with context) to crop_size."""

import numpy as np
import pytest
from layer_harness import make_layer, run_forward
from PIL import Image

from caffelite.data.image import resize_linear
from caffelite.errors import CaffeliteError, FileFormatError, NetError
from caffelite.io.blob import write_binaryproto
from caffelite.phase import TEST, TRAIN


def write_window_file(path, images):
    """images: [(image path, (height, width), [(class, overlap, x1, y1, x2, y2), ...])] in Caffe's format."""
    lines = []
    for index, (image_path, (height, width), windows) in enumerate(images):
        lines += [f"# {index}", str(image_path), "3", str(height), str(width), str(len(windows))]
        lines += [" ".join(str(v) for v in window) for window in windows]
    path.write_text("\n".join(lines) + "\n")
    return path


def window_layer(source, batch_size=8, extra="", transform="crop_size: 4", phase=TRAIN, seed=1701):
    text = f"""
        name: "win" type: "WindowData" top: "data" top: "label"
        window_data_param {{ source: "{source}" batch_size: {batch_size} {extra} }}
        transform_param {{ {transform} }}
    """
    return make_layer(text, [], phase=phase, seed=seed)


def bgr(rgb_image):
    """(H, W, 3) RGB pixels -> (3, H, W) BGR floats."""
    return rgb_image[..., ::-1].transpose(2, 0, 1).astype(np.float64)


# Solid-colour windows (RGB); each is a rectangle (x1, y1, x2, y2) painted in its own colour.
COLOURED = {
    "A": dict(image=0, label=1, overlap=0.9, box=(1, 1, 8, 6), rgb=(200, 10, 10)),
    "B": dict(image=0, label=2, overlap=0.8, box=(12, 2, 20, 9), rgb=(10, 200, 10)),
    "C": dict(image=0, label=3, overlap=0.5, box=(22, 1, 28, 8), rgb=(10, 10, 200)),  # between thresholds: unused
    "D": dict(image=0, label=5, overlap=0.1, box=(2, 11, 12, 18), rgb=(90, 90, 0)),  # background: label 0
    "E": dict(image=1, label=1, overlap=1.0, box=(0, 0, 7, 7), rgb=(0, 90, 90)),
    "F": dict(image=1, label=7, overlap=0.2, box=(8, 8, 15, 15), rgb=(250, 250, 250)),  # background
}


@pytest.fixture
def coloured(tmp_path):
    canvases = [np.zeros((20, 30, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
    for window in COLOURED.values():
        x1, y1, x2, y2 = window["box"]
        canvases[window["image"]][y1 : y2 + 1, x1 : x2 + 1] = window["rgb"]
    paths = []
    for index, canvas in enumerate(canvases):
        paths.append(tmp_path / f"image{index}.png")
        Image.fromarray(canvas).save(paths[-1])
    entries = [
        (paths[index], canvas.shape[:2],
         [(w["label"], w["overlap"]) + w["box"] for w in COLOURED.values() if w["image"] == index])
        for index, canvas in enumerate(canvases)
    ]
    return write_window_file(tmp_path / "windows.txt", entries)


def test_labels_by_overlap_and_crops_from_their_windows(coloured):
    layer, bottom, top = window_layer(
        coloured, extra="fg_threshold: 0.7 bg_threshold: 0.3 fg_fraction: 0.5", transform="crop_size: 4"
    )
    try:
        assert top[0].shape == (8, 3, 4, 4) and top[1].shape == (8,)
        by_colour = {tuple(w["rgb"][::-1]): name for name, w in COLOURED.items()}  # BGR
        drawn = set()
        for _ in range(6):
            data, labels = run_forward(layer, bottom, top)
            for item, (crop, label) in enumerate(zip(data, labels)):
                colour = tuple(crop[:, 0, 0])
                assert np.all(crop == np.array(colour)[:, None, None])  # a warped solid window stays solid
                name = by_colour[colour]
                drawn.add(name)
                if item < 4:  # background first: batch_size - floor(batch_size * fg_fraction)
                    assert name in ("D", "F") and label == 0
                else:
                    assert name in ("A", "B", "E") and label == COLOURED[name]["label"]
        assert drawn == {"A", "B", "D", "E", "F"}  # never C
    finally:
        layer.close()


def test_scale_mean_values_and_test_phase_sampling(coloured):
    layer, bottom, top = window_layer(
        coloured, batch_size=4, extra="scale: 0.5 fg_fraction: 1", transform="crop_size: 3 mean_value: 10 "
        "mean_value: 20 mean_value: 30", phase=TEST,
    )
    try:
        data, labels = run_forward(layer, bottom, top)
        assert data.shape == (4, 3, 3, 3) and np.all(labels > 0)
        colours = {tuple((np.array(w["rgb"][::-1]) - [10, 20, 30]) * 0.5) for w in COLOURED.values()}
        assert all(tuple(crop[:, 1, 1]) in colours for crop in data)
    finally:
        layer.close()


@pytest.fixture
def textured(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "texture.png")
    return tmp_path, bgr(pixels)


def two_window_file(folder, foreground, background):
    return write_window_file(folder / "windows.txt", [(folder / "texture.png", (40, 40),
                                                      [(1, 0.9) + foreground, (1, 0.1) + background])])


def test_context_pad_geometry_with_padding_and_mirrored_padding(textured):
    folder, image = textured
    source = two_window_file(folder, foreground=(10, 12, 19, 21), background=(0, 0, 9, 9))
    layer, bottom, top = window_layer(source, batch_size=8, extra="fg_fraction: 0.5 context_pad: 2",
                                      transform="crop_size: 8 mirror: true")
    try:
        data, labels = run_forward(layer, bottom, top)
    finally:
        layer.close()
    np.testing.assert_array_equal(labels, [0] * 4 + [1] * 4)
    # Foreground 10x10 window, context scale 8 / (8 - 2*2) = 2: centre (15, 17) +- 10 -> x 5..25, y 7..27.
    inner = resize_linear(image[:, 7:28, 5:26].astype(np.uint8), 8, 8).astype(np.float64)
    # Background window at the corner: expanded to -5..15, so 5 pixels of it (2 after warping by 8/21) lie outside
    # the image; the clipped 16x16 region warps to round(16 * 8/21) = 6 pixels, placed after the padding.
    corner = resize_linear(image[:, 0:16, 0:16].astype(np.uint8), 6, 6).astype(np.float64)
    plain, mirrored = np.zeros((3, 8, 8)), np.zeros((3, 8, 8))
    plain[:, 2:8, 2:8] = corner
    mirrored[:, 2:8, 0:6] = corner[..., ::-1]  # the padding is mirrored too: it now sits on the right
    seen = set()
    for item, crop in enumerate(data):
        expected = (plain, mirrored) if item < 4 else (inner, inner[..., ::-1])
        flipped = [np.array_equal(crop, e) for e in expected]
        assert any(flipped), f"item {item}"
        seen.add((item < 4, flipped.index(True)))
    assert {(True, 0), (True, 1)} <= seen or {(False, 0), (False, 1)} <= seen


def test_square_mode_and_mean_file_taken_at_the_centre(textured):
    folder, image = textured
    source = two_window_file(folder, foreground=(10, 14, 19, 17), background=(0, 0, 9, 9))
    mean = np.random.default_rng(1).uniform(0, 50, size=(1, 3, 10, 10)).astype(np.float32)
    write_binaryproto(mean, folder / "mean.binaryproto")
    layer, bottom, top = window_layer(
        source, batch_size=2, extra='fg_fraction: 1 crop_mode: "square"',
        transform=f'crop_size: 8 mean_file: "{folder / "mean.binaryproto"}"',
    )
    try:
        data, labels = run_forward(layer, bottom, top)
    finally:
        layer.close()
    # A 10x4 window made square: half sides 5 around the centre (15, 16) -> x 10..20, y 11..21.
    warped = resize_linear(image[:, 11:22, 10:21].astype(np.uint8), 8, 8).astype(np.float64)
    expected = warped - mean[0, :, 1:9, 1:9]  # mean offset (10 - 8) // 2 on both axes
    for crop in data:
        np.testing.assert_allclose(crop, expected, rtol=1e-6)


def test_cached_images_survive_removal_and_missing_images_name_the_line(textured):
    folder, _ = textured
    source = two_window_file(folder, foreground=(10, 12, 19, 21), background=(0, 0, 9, 9))
    cached = window_layer(source, extra="cache_images: true")
    (folder / "texture.png").rename(folder / "moved.png")
    try:
        data, _ = run_forward(*cached)
        assert data.shape == (8, 3, 4, 4)
    finally:
        cached[0].close()
    layer, bottom, top = window_layer(source)
    try:
        with pytest.raises(CaffeliteError, match=r"layer 'win' \(WindowData\): .*windows.txt:2: image file "
                                                 r"'.*texture.png' does not exist"):
            run_forward(layer, bottom, top)
    finally:
        layer.close()
    with pytest.raises(CaffeliteError, match=r"windows.txt:2: cannot read image file"):
        window_layer(source, extra="cache_images: true")


def test_window_outside_the_image_is_reported(textured):
    folder, _ = textured
    source = two_window_file(folder, foreground=(30, 30, 45, 39), background=(0, 0, 9, 9))
    layer, bottom, top = window_layer(source, extra="fg_fraction: 1")
    try:
        with pytest.raises(FileFormatError, match=r"windows.txt:7: window \(30, 30, 45, 39\) does not fit the "
                                                  r"40x40 image"):
            run_forward(layer, bottom, top)
    finally:
        layer.close()


def test_window_file_and_option_errors(tmp_path):
    with pytest.raises(CaffeliteError, match=r"window file '.*absent.txt' does not exist"):
        window_layer(tmp_path / "absent.txt")
    source = tmp_path / "windows.txt"
    source.write_text("")
    with pytest.raises(FileFormatError, match="is empty"):
        window_layer(source)
    source.write_text("# 1\nimg.png\n3 10 10 0\n")
    with pytest.raises(FileFormatError, match=r"windows.txt:1: image index 1, expected 0"):
        window_layer(source)
    source.write_text("# 0\nimg.png\n3 10 10 2\n1 0.9 0 0 4 4\n")
    with pytest.raises(FileFormatError, match=r"windows.txt:4: the file ends where the class should be"):
        window_layer(source)
    source.write_text("# 0\nimg.png\n3 10 10 1\n0 0.9 0 0 4 4\n")
    with pytest.raises(FileFormatError, match=r"windows.txt:4: a foreground window needs a class > 0"):
        window_layer(source)
    source.write_text("# 0\nimg.png\n1 10 10 1\n1 0.9 0 0 4 4\n")
    with pytest.raises(FileFormatError, match=r"windows.txt:3: WindowData reads images in colour"):
        window_layer(source)
    source.write_text("# 0\nimg.png\n3 10 10 1\n1 0.9 0 0 4 x\n")
    with pytest.raises(FileFormatError, match=r"windows.txt:4: the y2 must be an integer, got 'x'"):
        window_layer(source)
    source.write_text("# 0\nimg.png\n3 10 10 1\n1 0.9 0 0 4 4\n")
    with pytest.raises(NetError, match="1 foreground and 0 background windows; both kinds are needed"):
        window_layer(source)
    with pytest.raises(NetError, match=r"needs transform_param.crop_size > 0 \(window_data_param.crop_size is "
                                       r"deprecated"):
        window_layer(source, extra="crop_size: 4", transform="")
    with pytest.raises(NetError, match="crop_mode must be"):
        window_layer(source, extra='crop_mode: "stretch"')
    with pytest.raises(NetError, match="context_pad 2 leaves nothing"):
        window_layer(source, extra="context_pad: 2")
