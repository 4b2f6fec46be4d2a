"""The login-side lifecycle of a calibration, as a library the command line calls.

``request`` checks what was asked; ``run`` submits the tasks, waits for them and hands each
outcome to ``finish``, which stores it once and turns what is stored into a status, a
verdict and a preset (adopted or not); ``presets`` writes the preset files; ``recover``
finds calibrations that outlived their command (batch jobs, or a local one whose blasprof is
gone) and stores what they left; ``outcome`` says what an end comes to for the command
(its exit code); ``signals`` notes a signal and acts on it where nothing is lost. Everything
reports through the ``sink.Sink`` its caller passes in: nothing here prints.
"""
