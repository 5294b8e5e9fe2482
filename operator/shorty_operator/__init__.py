"""The Shorty operator: reconciles ``ShortLink`` custom resources through the Shorty API.

Its kopf handlers arrive with the operator issue; the package exists now so
the layout, packaging and imports are settled.
"""

__all__: list[str] = []
