"""blasprof's database: where calibrations, their jobs, measurements and presets are kept.

Open it with ``open_database(url)`` (``--db``/``BLASPROF_DB``, default SQLite in the data
dir); the returned ``Database`` takes and returns plain records. ``upgrade(url)`` is
``blasprof db upgrade``. Importing this package imports SQLAlchemy, so the CLI imports it
only inside the commands that need it.
"""

from db.database import Database, open_database, upgrade
from db.engine import resolve_url
from db.records import CalibrationRecord, CalibrationSummary, JobRecord, StoredMeasurement

__all__ = [
    "CalibrationRecord",
    "CalibrationSummary",
    "Database",
    "JobRecord",
    "StoredMeasurement",
    "open_database",
    "resolve_url",
    "upgrade",
]
