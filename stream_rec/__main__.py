"""``python -m stream_rec`` → the CLI."""

from stream_rec.cli import main

main()
