"""The login-side lifecycle of a calibration, as a library: request, submit, wait, store
each outcome once, finish, adopt, write presets, recover what outlived its command."""
