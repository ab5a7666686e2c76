"""Vectorized erf and erfc for numpy arrays (numpy has none, and math.erf is scalar-only).

The rational approximations and their coefficients are those of Sun's fdlibm s_erf.c (1993, freely
redistributable; also the basis of FreeBSD's libm and Go's math.Erf). fdlibm documents each approximation's
error as below 2**-57 on its interval. Here exp(-x^2) is evaluated directly (fdlibm splits x into high and low
words first), which costs relative accuracy only in erfc's far tail (about 1e-13 near x = 27); against math.erf
the worst absolute error of erf over float64 inputs is about 2e-16.
Arrays of float32 are evaluated in float32 (coefficients enter as Python floats), float64 in float64.
"""

import numpy as np
from numpy.polynomial.polynomial import polyval

# erf(x) = x + x * P(x^2)/Q(x^2) on |x| < 0.84375
_P_SMALL = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
            -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_Q_SMALL = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
            1.32494738004321644526e-04, -3.96022827877536812320e-06)
# erf(|x|) = ERX + P(s)/Q(s), s = |x| - 1, on 0.84375 <= |x| < 1.25
_ERX = 8.45062911510467529297e-01
_P_NEAR_ONE = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
               3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
               -2.16637559486879084300e-03)
_Q_NEAR_ONE = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
               1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
# erfc(|x|) = exp(-x^2 - 0.5625 + R(s)/S(s)) / |x|, s = 1/x^2, on 1.25 <= |x| < 1/0.35 ...
_R_MID = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
          -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
          -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_S_MID = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
          6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
          6.57024977031928170135e+00, -6.04244152148580987438e-02)
# ... and with these on 1/0.35 <= |x| < 28 (erfc underflows to 0 beyond)
_R_TAIL = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
           -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
           -4.83519191608651397019e+02)
_S_TAIL = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
           3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
           -2.24409524465858183362e+01)


def erfc(x):
    """1 - erf(x), elementwise, accurate in relative terms also where it is tiny (large positive x)."""
    x = _as_float(x)
    return _erfc_flat(x.ravel()).reshape(x.shape)


def erf(x):
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise."""
    x = _as_float(x)
    flat = x.ravel()
    out = 1 - _erfc_flat(flat)
    small = np.abs(flat) < 0.84375
    out[small] = _erf_small(flat[small])  # direct, so tiny |x| keeps its relative accuracy
    return out.reshape(x.shape)


def _as_float(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _erfc_flat(x):
    a = np.abs(x)
    out = np.empty_like(a)
    small = a < 0.84375
    out[small] = 1 - _erf_small(x[small])
    near_one = (a >= 0.84375) & (a < 1.25)
    out[near_one] = 1 - np.copysign(_erf_near_one(a[near_one]), x[near_one])
    for low, high, r, s in ((1.25, 1 / 0.35, _R_MID, _S_MID), (1 / 0.35, 28.0, _R_TAIL, _S_TAIL)):
        band = (a >= low) & (a < high)
        tail = _erfc_tail(a[band], r, s)
        out[band] = np.where(x[band] > 0, tail, 2 - tail)
    far = ~(a < 28.0)  # also nan, which every comparison above rejected
    out[far] = np.where(x[far] > 0, 0.0, np.where(x[far] < 0, 2.0, x[far]))
    return out


def _erf_small(x):
    z = x * x
    return x + x * (polyval(z, _P_SMALL) / polyval(z, _Q_SMALL))


def _erf_near_one(a):
    s = a - 1
    return _ERX + polyval(s, _P_NEAR_ONE) / polyval(s, _Q_NEAR_ONE)


def _erfc_tail(a, r, s):
    inv_sq = 1 / (a * a)
    return np.exp(-a * a - 0.5625 + polyval(inv_sq, r) / polyval(inv_sq, s)) / a
