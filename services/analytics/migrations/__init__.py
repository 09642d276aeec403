"""The analytics service's migration history."""

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).parent
