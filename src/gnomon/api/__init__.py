"""The control plane: the operations the CLI and the HTTP API share (``_operations``), and
the HTTP API the daemon serves. Importing this package imports nothing else, so the CLI
stays fast."""
