"""coord_map over NetSpec graphs: conv / pool / deconv / crop / pointwise maps, composition, and crop()."""

import numpy as np
import pytest

import caffelite as caffe
from caffelite.coord_map import (
    AxisMismatchException,
    CropError,
    UnconnectedTopsError,
    compose,
    coord_map,
    coord_map_from_to,
    crop,
    inverse,
)
from caffelite.errors import CaffeliteError
from caffelite.net_spec import NetSpec
from caffelite.net_spec import layers as L
from caffelite.net_spec import params as P


def down_up_net(kernel=3, stride=1, pad=0, pool=2, up=2, up_pad=0):
    """data -> conv -> max pool -> deconv (kernel twice its stride), with a second small input `aux`."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=kernel, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    up_kernel = [2 * s for s in up] if isinstance(up, list) else 2 * up
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=up_kernel, stride=up, pad=up_pad)
    return n


def assert_map(mapping, axis, scale, shift):
    got_axis, got_scale, got_shift = mapping
    assert got_axis == axis
    np.testing.assert_allclose(np.atleast_1d(got_scale), np.atleast_1d(scale))
    np.testing.assert_allclose(np.atleast_1d(got_shift), np.atleast_1d(shift))


def test_single_layer_maps():
    n = down_up_net(kernel=5, stride=2, pad=1)
    # conv: output i is centred on input 2i + 2 - 1, so input x -> (x - 1) / 2
    assert_map(coord_map(n.conv.fn), 1, 0.5, -0.5)
    assert_map(coord_map(n.pool.fn), 1, 0.5, -0.25)
    assert_map(coord_map(n.deconv.fn), 1, 2, 1.5)
    assert coord_map(L.ReLU(n.conv).fn) == (None, 1, 0)


def test_dilation_widens_the_kernel():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=3, dilation=2)
    # a 3-tap kernel with dilation 2 spans 5 pixels: shift -(5 - 1) / 2
    assert_map(coord_map(n.conv.fn), 1, 1, -2)


def test_compose_and_inverse_algebra():
    first = (1, np.array([0.5]), np.array([-1.0]))
    second = (None, 2, 3)
    axis, scale, shift = compose(first, second)
    # compose(f, g)(x) = f(g(x)) = 0.5 * (2x + 3) - 1
    assert axis == 1 and scale == 1 and shift == 0.5
    axis, scale, shift = compose(first, inverse(first))
    assert axis == 1 and scale == 1 and shift == 0
    with pytest.raises(AxisMismatchException):
        compose((1, 1, 0), (2, 1, 0))


def test_two_x_down_then_two_x_up_is_the_identity():
    n = down_up_net()
    assert_map(coord_map_from_to(n.deconv, n.data), 1, 1, 0)


def test_four_x_down_then_four_x_up_shifts_by_one():
    n = down_up_net(pool=4, up=4)
    assert_map(coord_map_from_to(n.deconv, n.data), 1, 1, -1)


def test_pointwise_and_one_by_one_layers_change_nothing():
    n = down_up_net()
    reference = coord_map_from_to(n.deconv, n.data)
    n.relu = L.ReLU(n.deconv)
    n.conv1x1 = L.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    for top in (n.relu, n.conv1x1):
        assert_map(coord_map_from_to(top, n.data), *reference)


@pytest.mark.parametrize("pad", [1, 4, 7])
def test_conv_padding_and_deconv_padding_shift_opposite_ways(pad):
    base = down_up_net()
    _, scale, shift = coord_map_from_to(base.deconv, base.data)
    padded_conv = down_up_net(pad=pad)
    assert_map(coord_map_from_to(padded_conv.deconv, padded_conv.data), 1, scale, shift - pad)
    padded_deconv = down_up_net(up_pad=pad)
    assert_map(coord_map_from_to(padded_deconv.deconv, padded_deconv.data), 1, scale, shift + pad)
    both = down_up_net(pad=pad, up_pad=pad)
    assert_map(coord_map_from_to(both.deconv, both.data), 1, scale, shift)


def test_every_bottom_top_pair_of_a_layer_maps_alike():
    n = down_up_net()
    n.conv_data, n.conv_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=10, kernel_size=5, stride=2, pad=0)
    from_data = coord_map_from_to(n.conv_data, n.data)
    from_aux = coord_map_from_to(n.conv_aux, n.aux)
    assert_map(from_data, *from_aux)
    assert_map(from_data, 1, 2, 2)


def test_per_axis_parameters_map_each_axis_like_the_square_case():
    square3 = down_up_net(kernel=3, stride=1, pad=0)
    square5 = down_up_net(kernel=5, stride=2, pad=10)
    mixed = down_up_net(kernel=[3, 5], stride=[1, 2], pad=[0, 10])
    axis3, scale3, shift3 = coord_map_from_to(square3.deconv, square3.data)
    axis5, scale5, shift5 = coord_map_from_to(square5.deconv, square5.data)
    axis, scale, shift = coord_map_from_to(mixed.deconv, mixed.data)
    assert axis == axis3 == axis5 == 1
    assert len(scale) == len(shift) == 2
    np.testing.assert_allclose([scale[0], shift[0]], [scale3[0], shift3[0]])
    np.testing.assert_allclose([scale[1], shift[1]], [scale5[0], shift5[0]])
    # the stride-2 axis is downsampled 4x in total but upsampled only 2x
    np.testing.assert_allclose(scale, [1, 2])


def test_three_spatial_axes():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 100, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=[3, 3, 3], stride=[1, 1, 1], pad=[0, 1, 2])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2, pad=0)
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=4, stride=2, pad=0)
    axis, scale, shift = coord_map_from_to(n.deconv, n.data)
    assert axis == 1 and len(scale) == len(shift) == 3
    np.testing.assert_allclose(scale, 1)
    # each extra pixel of padding moves the map by one
    np.testing.assert_allclose(np.diff(shift), [-1, -1])


@pytest.mark.parametrize("offset", [0, 3, 10])
def test_cropping_a_top_adds_its_offset(offset):
    n = down_up_net()
    _, scale, shift = coord_map_from_to(n.deconv, n.data)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=offset)
    assert_map(coord_map_from_to(n.crop, n.data), 1, scale, shift + offset)


def test_crop_reads_nested_crop_param_too():
    n = down_up_net()
    n.crop = L.Crop(n.deconv, n.data, crop_param=dict(axis=2, offset=[2, 5]))
    assert_map(coord_map_from_to(n.crop, n.data), 1, 1, [2, 5])


def test_crop_helper_builds_a_crop_layer_that_lines_tops_up():
    n = down_up_net(pool=4, up=4)  # deconv lies one pixel off the data
    n.score = crop(n.deconv, n.data)
    assert n.score.fn.type_name == "Crop"
    assert n.score.fn.inputs == (n.deconv, n.data)
    assert n.score.fn.params["crop_param"] == {"axis": 2, "offset": [1]}
    assert_map(coord_map_from_to(n.score, n.data), 1, 1, 0)
    layer = n.to_proto().layer[-1]
    assert layer.type == "Crop" and list(layer.bottom) == ["deconv", "data"]
    assert layer.crop_param.axis == 2 and list(layer.crop_param.offset) == [1]


def test_crop_helper_output_runs_in_a_net():
    n = down_up_net(pool=4, up=4)
    n.score = crop(n.deconv, n.data)
    net = caffe.Net(n.to_proto(), caffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(size=blob.data.shape)
    net.forward(data=rng.normal(size=(2, 1, 100, 100)), aux=np.zeros((2, 1, 20, 20)))
    assert np.abs(net.blobs["score"].data).max() > 0
    assert net.blobs["score"].data.shape == (2, 10, 100, 100)
    np.testing.assert_array_equal(net.blobs["score"].data, net.blobs["deconv"].data[:, :, 1:101, 1:101])


def test_unconnected_tops_are_reported():
    n = down_up_net()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError):
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(UnconnectedTopsError, match="no common ancestor"):
        coord_map_from_to(n.ip, n.data)


def test_crop_refuses_a_scale_mismatch():
    n = down_up_net(pool=3, up=2)
    with pytest.raises(AssertionError):
        crop(n.deconv, n.data)
    with pytest.raises(CropError, match="scale"):
        crop(n.deconv, n.data)


def test_crop_refuses_a_negative_offset():
    n = down_up_net(up_pad=10)  # the deconv output is smaller than the data
    with pytest.raises(CropError, match="negative"):
        crop(n.deconv, n.data)


def test_legacy_h_w_parameters_are_rejected():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=1, kernel_h=3, kernel_w=3)
    with pytest.raises(CaffeliteError, match="kernel_h"):
        coord_map(n.conv.fn)
