"""stealml: how cheaply can the model behind a prediction API be stolen?"""

from __future__ import annotations

__version__ = "0.1.0"
