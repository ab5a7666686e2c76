"""Layer types, one module each; importing this package registers them all."""

import importlib
import pkgutil


def _import_all():
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()
