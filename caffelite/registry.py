"""Name -> class registries: every extension point (layers, fillers, lr policies, solvers) is one."""

from caffelite.errors import UnknownNameError


class Registry:
    """Maps names used in prototxt files to the Python objects that implement them."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        """Decorator: `@registry.register("Name")` records the decorated object under `name`."""

        def decorate(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name):
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def __contains__(self, name):
        return name in self._entries

    def names(self):
        return sorted(self._entries)
