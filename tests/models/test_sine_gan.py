"""models/sine_gan: the generator learns signals close to the sine family; its steps leave the discriminator alone."""

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "models" / "sine_gan" / "sine_gan.py"


def load():
    spec = importlib.util.spec_from_file_location("sine_gan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sine_fit_recovers_amplitude_and_rejects_noise():
    gan = load()
    amplitude, residual = gan.fit_sine(0.8 * np.sin(gan.GRID + 1.0))
    assert abs(amplitude - 0.8) < 1e-9 and residual < 1e-9
    _, residual = gan.fit_sine(np.random.default_rng(0).uniform(-1, 1, gan.SAMPLES))
    assert residual > 0.4


def test_a_generator_step_changes_the_generator_only():
    gan = load().SineGAN(seed=2)
    gan.step()
    frozen = {name: [p.data.copy() for p in gan.generator.net.params[name]] for name in ("d1", "d2", "d3")}
    generator = [p.data.copy() for p in gan.generator.net.params["g1"]]
    gan.generator.step(1)
    for name, values in frozen.items():
        for before, param in zip(values, gan.generator.net.params[name]):
            np.testing.assert_array_equal(param.data, before)
    assert not np.array_equal(gan.generator.net.params["g1"][0].data, generator[0])
    assert np.abs(gan.generator.net.params["g1"][0].grad).sum() > 0  # the gradient came through the copy


def test_trained_signals_are_sines_of_the_training_family(tmp_path):
    module = load()
    gan = module.train(6000, seed=1, log=lambda line: None)
    fits = [module.fit_sine(signal) for signal in gan.generate()]
    residuals = np.array([r for _, r in fits])
    amplitudes = np.array([a for a, _ in fits])
    assert np.median(residuals) < 0.25 and np.mean(residuals < 0.35) > 0.8
    low, high = module.AMPLITUDE
    assert low - 0.2 < np.median(amplitudes) < high + 0.2
    module.plot(gan, tmp_path / "gan.png")
    assert (tmp_path / "gan.png").read_bytes()[:4] == b"\x89PNG"
