"""caffelite.data.transformer: the batch DataTransformer against a literal per-item, per-pixel reference."""

import itertools

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.data.transformer import DataTransformer
from caffelite.errors import CaffeliteError
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2


def transform_param(text):
    return text_format.Parse(text, caffe_pb2.TransformationParameter())


def reference_item(x, scale=1.0, mean=None, mean_values=None, crop=0, h_off=0, w_off=0, mirror=False,
                   dtype=np.float32):
    """Caffe's DataTransformer::Transform(Datum) for one item, pixel by pixel, in `dtype` arithmetic."""
    real = np.dtype(dtype).type
    channels, height, width = x.shape
    out_h, out_w = (crop, crop) if crop else (height, width)
    if mean_values is not None and len(mean_values) == 1:
        mean_values = list(mean_values) * channels
    out = np.zeros((channels, out_h, out_w), dtype=dtype)
    for c in range(channels):
        for h in range(out_h):
            for w in range(out_w):
                value = real(x[c, h_off + h, w_off + w])
                if mean is not None:
                    value = (value - real(mean[c, h_off + h, w_off + w])) * real(scale)
                elif mean_values is not None:
                    value = (value - real(mean_values[c])) * real(scale)
                else:
                    value = value * real(scale)
                out[c, h, out_w - 1 - w if mirror else w] = value
    return out


def random_batch(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_mean(path, mean, legacy=True):
    blob = caffe_pb2.BlobProto()
    if legacy:
        blob.num, (blob.channels, blob.height, blob.width) = 1, mean.shape
    else:
        blob.shape.dim.extend((1,) + mean.shape)
    blob.data.extend(mean.ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_only(dtype):
    batch = random_batch((3, 2, 4, 5))
    transformer = DataTransformer(transform_param("scale: 0.00390625"), TEST, dtype=dtype)
    out = transformer.transform(batch)
    assert out.dtype == dtype and out.shape == (3, 2, 4, 5)
    for n in range(3):
        np.testing.assert_array_equal(out[n], reference_item(batch[n], scale=0.00390625, dtype=dtype))


def test_identity_keeps_values_and_does_not_touch_the_input():
    batch = random_batch((2, 1, 3, 3))
    saved = batch.copy()
    out = DataTransformer(transform_param(""), TEST).transform(batch)
    np.testing.assert_array_equal(out, batch.astype(np.float32))
    np.testing.assert_array_equal(batch, saved)


@pytest.mark.parametrize("values", [[104.0, 117.0, 123.0], [127.5]])
def test_mean_value_one_or_per_channel(values):
    batch = random_batch((2, 3, 4, 4), seed=1)
    text = "scale: 0.017 " + " ".join(f"mean_value: {v}" for v in values)
    out = DataTransformer(transform_param(text), TEST).transform(batch)
    for n in range(2):
        np.testing.assert_array_equal(out[n], reference_item(batch[n], scale=0.017, mean_values=values))


@pytest.mark.parametrize("legacy", [True, False])
def test_mean_file(tmp_path, legacy):
    batch = random_batch((2, 3, 5, 6), seed=2)
    mean = np.random.default_rng(3).uniform(0, 255, size=(3, 5, 6)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean, legacy)
    out = DataTransformer(transform_param(f'scale: 0.5 mean_file: "{path}"'), TEST).transform(batch)
    for n in range(2):
        np.testing.assert_array_equal(out[n], reference_item(batch[n], scale=0.5, mean=mean))


def test_centre_crop_in_test_takes_the_mean_at_the_crop_offset(tmp_path):
    batch = random_batch((3, 2, 7, 8), seed=4)
    mean = np.random.default_rng(5).uniform(0, 255, size=(2, 7, 8)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean)
    transformer = DataTransformer(transform_param(f'crop_size: 4 scale: 2 mean_file: "{path}"'), TEST)
    assert transformer.output_shape((2, 7, 8)) == (2, 4, 4)
    out = transformer.transform(batch)
    assert out.shape == (3, 2, 4, 4)
    for n in range(3):  # Caffe's centre: ((7 - 4) // 2, (8 - 4) // 2) = (1, 2)
        np.testing.assert_array_equal(out[n], reference_item(batch[n], 2, mean=mean, crop=4, h_off=1, w_off=2))


def matching_choices(out_item, x, crop, **kwargs):
    """Every (h_off, w_off, mirror) whose reference transform equals `out_item`."""
    height, width = x.shape[1:]
    choices = itertools.product(range(height - crop + 1), range(width - crop + 1), (False, True))
    return [
        (h, w, m) for h, w, m in choices
        if np.array_equal(out_item, reference_item(x, crop=crop, h_off=h, w_off=w, mirror=m, **kwargs))
    ]


def test_random_crop_and_mirror_in_train_are_crops_and_flips_of_the_input(tmp_path):
    batch = random_batch((40, 3, 6, 7), seed=6)
    mean = np.random.default_rng(7).uniform(0, 255, size=(3, 6, 7)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean)
    param = transform_param(f'crop_size: 4 mirror: true scale: 0.25 mean_file: "{path}"')
    out = DataTransformer(param, TRAIN, generator=np.random.default_rng(11)).transform(batch)
    assert out.shape == (40, 3, 4, 4)
    seen = []
    for n in range(40):
        choices = matching_choices(out[n], batch[n], 4, scale=0.25, mean=mean)
        assert len(choices) == 1, f"item {n} is no crop/flip of its input"
        seen.append(choices[0])
    rows, cols, flips = zip(*seen)
    assert len(set(rows)) > 1 and len(set(cols)) > 1 and set(flips) == {False, True}


def test_random_transforms_repeat_with_the_same_seed():
    batch = random_batch((16, 1, 9, 9), seed=8)
    param = transform_param("crop_size: 5 mirror: true mean_value: 33")

    def run(seed):
        return DataTransformer(param, TRAIN, generator=np.random.default_rng(seed)).transform(batch)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_mirror_without_crop_flips_some_items_also_in_test():
    # Caffe draws the flip whenever `mirror` is set, whatever the phase (only the crop position depends on it).
    batch = random_batch((30, 2, 3, 5), seed=9)
    transformer = DataTransformer(transform_param("mirror: true"), TEST, generator=np.random.default_rng(0))
    out = transformer.transform(batch)
    flipped = [np.array_equal(out[n], batch[n, :, :, ::-1]) for n in range(30)]
    kept = [np.array_equal(out[n], batch[n]) for n in range(30)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_float_items_and_output_buffer():
    batch = np.random.default_rng(10).standard_normal((2, 1, 4, 4)).astype(np.float32)
    out = np.empty((2, 1, 2, 2), np.float64)
    result = DataTransformer(transform_param("crop_size: 2 scale: 3"), TEST, dtype=np.float64).transform(batch, out)
    assert result is out
    for n in range(2):
        np.testing.assert_array_equal(out[n], reference_item(batch[n], 3, crop=2, h_off=1, w_off=1, dtype=np.float64))


def test_configuration_errors(tmp_path):
    path = write_mean(tmp_path / "mean.binaryproto", np.zeros((1, 4, 4), np.float32))
    with pytest.raises(CaffeliteError, match="mean_file and mean_value at the same time"):
        DataTransformer(transform_param(f'mean_file: "{path}" mean_value: 1'), TEST)
    with pytest.raises(CaffeliteError, match="mean_file '.*missing.binaryproto' does not exist"):
        DataTransformer(transform_param(f'mean_file: "{tmp_path / "missing.binaryproto"}"'), TEST)
    (tmp_path / "corrupt.binaryproto").write_bytes(b"\xff\xff\xff")
    with pytest.raises(CaffeliteError, match="corrupt.binaryproto"):
        DataTransformer(transform_param(f'mean_file: "{tmp_path / "corrupt.binaryproto"}"'), TEST)
    with pytest.raises(CaffeliteError, match="random generator"):
        DataTransformer(transform_param("mirror: true"), TEST)
    with_mean = DataTransformer(transform_param(f'mean_file: "{path}"'), TEST, where="layer 'd' (Data)")
    with pytest.raises(CaffeliteError, match=r"layer 'd' \(Data\): mean_file .* has shape \(1, 4, 4\)"):
        with_mean.transform(random_batch((1, 1, 5, 5)))
    with pytest.raises(CaffeliteError, match="either 1 mean_value or one per channel"):
        DataTransformer(transform_param("mean_value: 1 mean_value: 2"), TEST).transform(random_batch((1, 3, 2, 2)))
    with pytest.raises(CaffeliteError, match="crop_size 5 is larger than the 4x4 items"):
        DataTransformer(transform_param("crop_size: 5"), TEST).output_shape((1, 4, 4))


MEANS = {"none": "", "values": "mean_value: 100 mean_value: 50", "file": None}


@pytest.mark.parametrize("phase", [TRAIN, TEST])
@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("crop", [0, 3])
@pytest.mark.parametrize("mean_kind", sorted(MEANS))
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_every_option_combination_matches_the_reference(tmp_path, phase, mirror, crop, mean_kind, scale):
    """Each item equals the per-pixel reference at the crop and flip the phase allows (TEST: centre crop)."""
    batch = random_batch((12, 2, 5, 6), seed=12)
    mean = np.random.default_rng(13).uniform(0, 255, size=(2, 5, 6)).astype(np.float32)
    mean_text = MEANS[mean_kind] if mean_kind != "file" else f'mean_file: "{write_mean(tmp_path / "m", mean)}"'
    param = transform_param(f"scale: {scale} mirror: {str(mirror).lower()} crop_size: {crop} {mean_text}")
    out = DataTransformer(param, phase, generator=np.random.default_rng(14)).transform(batch)
    kwargs = {"scale": scale, "mean": mean if mean_kind == "file" else None,
              "mean_values": [100.0, 50.0] if mean_kind == "values" else None}
    size = crop or None
    for n in range(12):
        if crop:
            choices = matching_choices(out[n], batch[n], crop, **kwargs)
        else:
            choices = [(0, 0, m) for m in (False, True)
                       if np.array_equal(out[n], reference_item(batch[n], mirror=m, **kwargs))]
        assert choices, f"item {n} matches no allowed crop/flip"
        if not mirror:
            assert any(not flip for _, _, flip in choices)
        if crop and phase == TEST:  # Caffe's centre: ((5 - 3) // 2, (6 - 3) // 2) = (1, 1)
            assert any((h, w) == (1, 1) for h, w, _ in choices)
    assert out.shape == (12, 2, size or 5, size or 6)
