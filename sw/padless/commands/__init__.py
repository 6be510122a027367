"""CLI sub-commands, one module each (see padless.cli)."""
