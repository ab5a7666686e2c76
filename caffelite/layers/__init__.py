"""Layer types, one module each; importing this package registers them all.

It is also pycaffe's NetSpec layer factory: `from caffelite import layers as L; L.Convolution(bottom, ...)`.
Layer types are CamelCase and this package's modules snake_case, so the two kinds of name never meet.
"""

import importlib
import pkgutil


def _import_all():
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()


def __getattr__(name):
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from caffelite.net_spec import layers as netspec_layers

    return getattr(netspec_layers, name)
