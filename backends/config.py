"""Backend settings (the ``backend`` section): which backend, and each backend's options.

Each backend owns its own section class (``backends/http_config.py``,
``backends/onnx_config.py``); server/settings.py parses them like every other section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostcomplete.backends.http_config import HttpSettings
from ghostcomplete.backends.onnx_config import OnnxSettings
from ghostcomplete.backends.setting_checks import one_of

KINDS = ("lookup", "http", "onnx")


@dataclass(frozen=True)
class BackendSettings:
    kind: str = field(default="lookup", metadata=one_of(*KINDS))
    http: HttpSettings = field(default_factory=HttpSettings)
    onnx: OnnxSettings = field(default_factory=OnnxSettings)
