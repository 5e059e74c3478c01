"""Command-line interface: parses, validates, calls the library. Holds no logic of its own."""
