"""``dir()`` of a public module lists its public API, not the modules it imports."""


def public_dir(names):
    """A module-level ``__dir__`` (PEP 562) that lists ``names``, the module's ``__all__``.

    ``dir(tfp_flows.flows)`` then shows the builders instead of ``np``, ``tf``, ``tfb``, ``tfd``
    (so do tab completion and ``help``); attribute access is unchanged.
    """
    listing = sorted(set(names))

    def __dir__():
        return list(listing)

    return __dir__
