"""The launcher: a scenario file (validated once, `scenario.py`) run as a hub plus agent processes.

`yamlsource.py` parses YAML keeping the line of every key, so validation errors name the line to fix.
"""
