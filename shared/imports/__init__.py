"""What the services' bulk CSV imports share."""
