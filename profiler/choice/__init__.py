"""From measurements to a preset: ``rule`` (the one rule that picks a count from curves),
``preset`` (size classes, layout rows, a calibration's points into a preset) and
``adoption`` (whether a new preset replaces the one jobs use now)."""
