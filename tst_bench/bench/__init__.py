"""The benchmark harness behind the pytest plugin: settings, runner, recording, shared resources.

Nothing here imports torch at import time; models load when a fixture first needs them.
"""
