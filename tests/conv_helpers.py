"""What the Convolution and Deconvolution tests share: layer text, the CASES row format, the forward check."""

import numpy as np
import pytest

import caffelite.layers._conv_base as conv_base_module

FILLERS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" min: -1 max: 1 }'


def convolution_text(name, layer_type, options, fillers=FILLERS, tops=None):
    names = "".join(f'top: "{top}" ' for top in tops or [])
    return f'name: "{name}" type: "{layer_type}" {names}convolution_param {{ {options} {fillers} }}'


def per_axis(values, n=2):
    return tuple(values) if isinstance(values, (tuple, list)) else (values,) * n


def case_options(case):
    """convolution_param options of a CASES row (input shape, num_output, options text, pad, stride, dilation,
    group, bias)."""
    _, num_output, options, *_, bias = case
    return f"num_output: {num_output} {options} bias_term: {str(bias).lower()}"


def check_against_reference(reference, layer, x, y, case):
    """y == reference(x, W, b, pad, stride, dilation, group), with the per-axis values of the CASES row."""
    *_, pad, stride, dilation, group, bias = case
    expected = reference(x, layer.params[0].data, layer.params[1].data if bias else None, per_axis(pad),
                         per_axis(stride), per_axis(dilation), group)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.fixture(params=["image products", "one product"])
def products(request, monkeypatch):
    """Run a test both ways small layers can take: a product per image (the default for them) and one product over
    the whole block of images."""
    if request.param == "one product":
        monkeypatch.setattr(conv_base_module, "IMAGE_PRODUCTS_MAX_WEIGHTS", 0)
    return request.param
