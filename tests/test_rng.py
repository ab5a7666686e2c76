"""The seeded generator: the same seed gives the same draws; a negative seed means a fresh OS seed."""

from caffelite.rng import rng, set_random_seed


def test_same_seed_same_draws_and_reseeding_restarts():
    set_random_seed(5)
    first = rng().random(4)
    set_random_seed(5)
    assert (rng().random(4) == first).all()
    set_random_seed(6)
    assert not (rng().random(4) == first).all()


def test_negative_seed_seeds_from_the_os():
    set_random_seed(-1)
    a = rng().random(4)
    set_random_seed(-1)
    assert not (rng().random(4) == a).all()
