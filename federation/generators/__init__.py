"""ESO generators served through the federation: values made on request, per caller.

``model`` parses ``generators.external-secrets.io/v1alpha1`` resources; ``password``, ``uuids``,
``fake`` and ``vault_dynamic`` make values; ``registry`` builds one generator per resource;
``leases`` records every revocable credential with its owner, and ``revoker`` renews those whose pod
lives and revokes the others.
"""
