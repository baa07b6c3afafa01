"""Settings package: ``base`` is complete; ``local``, ``test`` and ``production`` adapt it."""
