"""The lookup and a model together (``backend.kind: "hybrid"``), and ``backend.kind: "auto"``,
which picks the hybrid with an installed model this machine runs fast enough, else the lookup."""
