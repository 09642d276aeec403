"""The `pinpoint` command: run the whole system on one machine, or one service as a container."""
