"""The gateway: the only public entrance to pinpoint."""
