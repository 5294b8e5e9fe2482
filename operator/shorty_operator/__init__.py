"""The Shorty operator: reconciles ``ShortLink`` custom resources through the Shorty API.

- ``model``: the pure parts (the link a spec asks for, drift, the status, and what
  follows each outcome);
- ``client``: the API's links declared by reference, the operator's only way in;
- ``handlers``: the kopf handlers and their registry;
- ``progress``: where kopf keeps a handler's progress, read under older names too;
- ``cli``: the ``shorty-operator`` command.
"""

__all__: list[str] = []
